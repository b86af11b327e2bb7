"""Every Firestore query a use case runs is served by an index production has.

The emulator answers any query; production refuses one that needs a composite index the
database lacks. Here each use case runs against the emulator while its queries are
recorded (the index adapter's ``observed`` hook; for the access store, every query the
Firestore SDK streams, transactional reads included); each query's index need is worked
out from its filters and ordering by Firestore's rules and looked up in
``firestore.indexes.json`` (which Terraform applies). Directions count: an index on
``time`` ascending does not serve a query ordered by ``time`` descending.
"""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Any

import pytest
from google.cloud.firestore_v1.query import Query

from rollerblade.access.model import MANAGE
from rollerblade.adapters import firestore_access, firestore_index, local_bus, local_dir, sqlite_access, sqlite_index
from rollerblade.adapters.process_exec import ProcessExecutor
from rollerblade.analyses.jobs import JobRecord
from rollerblade.pipeline import analyses, automation, deleting, querying, reindex, sharing
from rollerblade.pipeline.indexing import index_object
from rollerblade.pipeline.messages import JobResult
from rollerblade.pipeline.services import Services
from rollerblade.records import Actor, DatasetInfo, ObjectEvent
from tests.conftest import ACTOR, ROOT, GcpStack, admins

EQUALITY = {"EQUAL", "IN", "ARRAY_CONTAINS", "ARRAY_CONTAINS_ANY"}
#: The queries the README and docs show users (production must answer them as written).
DOCUMENTED = (
    "suffix=T1w AND meta.MagneticFieldStrength=3 AND participant.age>=60 AND participant.age<=70",
    "task=rest AND meta.RepetitionTime=2.0",
    "sub IN (01, 02)",
    "participant.age>=60",
    "analysis=brain-mask AND meta.BrainVolumeML<1100",
)


#: (collection, equality fields, the range-then-order fields with their directions)
Need = tuple[str, frozenset[str], tuple[tuple[str, str], ...]]


def need(query: Any, prefix: str) -> Need | None:
    """(collection, equality fields, range-then-order fields and directions) of the composite
    index a query needs, or None when single-field indexes serve it (equalities only, or
    one field, in either direction: Firestore keeps both for every field)."""
    if not hasattr(query, "_to_protobuf"):
        return None  # a whole collection, read in document order
    pb = query._to_protobuf()
    collection = pb.from_[0].collection_id.removeprefix(prefix)
    equal: set[str] = set()
    ranged: list[str] = []

    def walk(where: Any) -> None:
        if "composite_filter" in where:
            for sub in where.composite_filter.filters:
                walk(sub)
        elif "field_filter" in where:
            path, op = where.field_filter.field.field_path, where.field_filter.op.name
            (equal.add(path) if op in EQUALITY else ranged.append(path))

    if "where" in pb:
        walk(pb.where)
    directions = {o.field.field_path: o.direction.name for o in pb.order_by}
    fields = [f for f in dict.fromkeys([*ranged, *directions]) if f != "__name__"]
    # a range field the query does not order by is ordered ascending (Firestore's implicit order)
    tail = tuple((f, directions.get(f, "ASCENDING")) for f in fields)
    if not tail or (not equal and len(tail) == 1):
        return None
    return collection, frozenset(equal), tail


def declared() -> list[tuple[str, list[tuple[str, str]]]]:
    indexes = json.loads((ROOT / "firestore.indexes.json").read_text())["indexes"]
    return [(i["collectionGroup"], [(f["fieldPath"], f["order"]) for f in i["fields"]]) for i in indexes]


def served(requirement: Need) -> bool:
    collection, equal, tail = requirement
    return any(
        group == collection
        and {name for name, _ in fields[: len(equal)]} == equal
        and tuple(fields[len(equal) :]) == tail
        for group, fields in declared()
    )


def missing(observed: list[Any], prefix: str) -> str:
    """The composite indexes the observed queries lack, as a message ('' when none)."""
    lacking = {req for q in observed if (req := need(q, prefix)) and not served(req)}
    return "; ".join(f"{c}: {sorted(e)} then {list(t)}" for c, e, t in sorted(lacking, key=str))


def test_every_use_case_query_has_its_index(gcp: GcpStack, real_cohort: dict[str, Path], tmp_path: Path) -> None:
    prefix = f"i{uuid.uuid4().hex[:8]}_"
    index = firestore_index.FirestoreIndex(project=gcp.project, prefix=prefix, emulator=True)
    index.observed = []
    storage = local_dir.LocalDirStorage(tmp_path / "bucket")
    root = real_cohort["site-a"]
    for path in sorted(root.rglob("*")):
        if path.is_file():
            storage.put_file(key=f"datasets/site-a/{path.relative_to(root).as_posix()}", source=str(path))
    mask = "derivatives/brain-mask/site-a/sub-001/ses-1/anat/sub-001_ses-1_desc-brain_mask"
    storage.put_file(key=f"{mask}.nii.gz", source=str(root / "sub-001/ses-1/anat/sub-001_ses-1_T1w.nii.gz"))
    storage.put_bytes(key=f"{mask}.json", data=b'{"BrainVolumeML": 1050.5}')
    reindex.reindex_dataset("site-a", storage=storage, index=index, actor=ACTOR)  # replace_dataset
    for key in (
        "datasets/site-a/T1w.json",
        "datasets/site-a/participants.tsv",
        "datasets/site-a/sub-001/sub-001_sessions.tsv",
    ):
        index_object(ObjectEvent("created", key), storage=storage, index=index, actor=ACTOR)  # refreshes
    t1 = next(r for r in index.records(dataset="site-a") if r.entities.get("suffix") == "T1w")
    index_object(ObjectEvent("created", t1.file["key"]), storage=storage, index=index, actor=ACTOR)
    for info in index.datasets():
        index.dataset_stats(name=info.name)  # `rollerblade datasets`
    for text in DOCUMENTED:
        list(querying.find_records(text, index=index, actor=ACTOR))
        querying.count_records(text, index=index, actor=ACTOR)
    index.put_job(job=JobRecord.from_doc({**_job(), "analysis": "brain-mask"}))
    index.jobs(analysis="brain-mask", state="failed")  # `rollerblade jobs --failed --analysis`
    index.jobs(state="failed")
    # the rule engine: a brain-mask job's success plans tissue-volumes over its session
    access = sqlite_access.SqliteAccess(tmp_path / "access.sqlite")
    admins(access)
    services = Services(
        storage,
        index,
        local_bus.LocalBus(tmp_path / "bus.sqlite"),
        executor_name="process",
        access=access,
        audit=access,
    )
    services._executor = ProcessExecutor(storage=storage, workdir=tmp_path / "work")
    for name in ("brain-mask", "tissue-volumes", "qc-snapshot"):
        analyses.register_analysis(ROOT / "analyses" / name, index=index, executor=services.executor, actor=ACTOR)
    automation.apply_rules(services, ROOT / "pipeline_rules", actor=ACTOR)
    done = {**_job(), "key": "m" * 64, "analysis": "brain-mask", "dataset": "site-a", "state": "succeeded"}
    index.put_job(job=JobRecord.from_doc({**done, "outputs": [mask.split("/", 3)[3] + ".nii.gz"]}))
    planned = automation.on_job_result(services, JobResult("m" * 64, "brain-mask", "site-a", True), actor=ACTOR)
    assert planned.queued == 2  # tissue-volumes of the session, qc-snapshot of the mask
    index.jobs(state="planned")  # serve's start: every planned job announced again
    index.jobs(state="running")  # the reconciler
    plan = deleting.plan_delete("site-a", storage=storage, index=index)
    deleting.delete_dataset(plan, storage=storage, index=index, actor=ACTOR)
    assert index.observed and len(index.observed) > 20
    lacking = missing(index.observed, prefix)
    assert not lacking, "add to firestore.indexes.json: " + lacking


def test_every_access_query_has_its_index(gcp: GcpStack, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Users, tokens, grants and the audit log (FirestoreAccess) through the use cases the
    CLI and the HTTP API call: sign-in by token and by Google email, sharing, the audit log
    under each filter, a dataset's grants dropped."""
    observed: list[Any] = []
    stream = Query.stream

    def recording(self: Query, *args: Any, **kwargs: Any) -> Any:
        observed.append(self)
        return stream(self, *args, **kwargs)

    monkeypatch.setattr(Query, "stream", recording)  # collection reads and transactions go through it too
    prefix = f"a{uuid.uuid4().hex[:8]}_"
    access = firestore_access.FirestoreAccess(project=gcp.project, prefix=prefix, emulator=True)
    index = sqlite_index.SqliteIndex(tmp_path / "index.sqlite")  # only says which datasets exist
    index.put_dataset(info=DatasetInfo(name="site-a", owner=Actor("ana"), created="2026-01-01"))
    services = Services(
        local_dir.LocalDirStorage(tmp_path / "bucket"),
        index,
        local_bus.LocalBus(tmp_path / "bus.sqlite"),
        executor_name="process",
        access=access,
        audit=access,
    )
    admins(access)
    admin = sharing.local_principal(services, str(ACTOR))
    sharing.add_user(services, admin, "ana", email="ana@example.org")
    sharing.add_user(services, admin, "ben")
    ana = sharing.email_principal(services, "ana@example.org")  # a Google identity on the API
    sharing.claim(services, admin, "dataset", "site-a")
    sharing.grant(services, admin, "ana", "read", "site-a")
    sharing.grant(services, admin, "ben", MANAGE, "dataset:site-a")
    assert services.guard.readable(ana) == {"site-a"}
    with pytest.raises(Exception, match="manage"):
        sharing.grant(services, ana, "ben", "read", "site-a")  # refused, and audited
    text, token = sharing.create_token(services, ana, label="script")
    assert sharing.token_principal(services, text).name == "ana"  # a Rollerblade token on the API
    assert [t.id for t in sharing.list_tokens(services, ana)] == [token.id]
    assert token.id in {t.id for t in sharing.list_tokens(services, admin)}
    sharing.revoke_token(services, ana, token.id)
    assert sharing.access_show(services, ana, "site-a")["managers"] == sorted([str(ACTOR), "ben"])
    sharing.revoke(services, admin, "ben", MANAGE, "site-a")  # reads the other managers in a transaction
    assert {u.name for u in sharing.list_users(services, ana)} >= {"ana", "ben"}
    assert sharing.audit_entries(services, admin)  # everything
    assert sharing.audit_entries(services, admin, user="ana")  # one user's
    assert sharing.audit_entries(services, admin, dataset="site-a")  # a dataset's
    assert sharing.audit_entries(services, admin, user="ana", dataset="site-a", since=1.0)  # both
    assert sharing.audit_entries(services, ana)  # a user's own
    assert access.drop_resource(kind="dataset", resource="site-a") >= 1  # deleting the dataset
    needs = {req for q in observed if (req := need(q, prefix))}
    assert {c for c, _, _ in needs} == {"audit"}, needs  # the rest is equalities only (index merging)
    assert len(needs) == 3, needs  # by user, by dataset, by both
    lacking = missing(observed, prefix)
    assert not lacking, "add to firestore.indexes.json: " + lacking


def test_the_check_catches_a_missing_index() -> None:
    """The rule above, on a query shape no declared index serves."""
    assert not served(("records", frozenset({"s.suffix"}), (("n.`image.tr`", "ASCENDING"),)))
    assert served(("records", frozenset({"dataset"}), (("path", "ASCENDING"),)))
    assert served(("records", frozenset({"s.suffix"}), (("n.`participant.age`", "ASCENDING"),)))
    assert served(("audit", frozenset({"actor"}), (("time", "DESCENDING"),)))
    assert not served(("audit", frozenset({"actor"}), (("time", "ASCENDING"),))), "directions count"
    assert not served(("audit", frozenset({"kind"}), (("time", "DESCENDING"),))), "no index for kind alone"


def _job() -> dict[str, Any]:
    return {
        "key": "k" * 64,
        "analysis": "brain-mask",
        "version": "1",
        "dataset": "site-a",
        "slice_id": "sub-001",
        "state": "failed",
        "image_digest": "sha256:0",
        "params": {},
        "sources": [],
        "outputs": [],
    }
