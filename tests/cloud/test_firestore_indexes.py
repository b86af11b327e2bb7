"""Every Firestore query a use case runs is served by an index production has.

The emulator answers any query; production refuses one that needs a composite index the
database lacks. Here each use case runs against the emulator while the adapter records
its queries; each query's index need is worked out from its filters and ordering by
Firestore's rules and looked up in ``firestore.indexes.json`` (which Terraform applies).
"""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Any

from rollerblade.adapters import firestore_index, local_bus, local_dir, sqlite_access
from rollerblade.adapters.process_exec import ProcessExecutor
from rollerblade.analyses.jobs import JobRecord
from rollerblade.pipeline import analyses, automation, deleting, querying, reindex
from rollerblade.pipeline.indexing import index_object
from rollerblade.pipeline.messages import JobResult
from rollerblade.pipeline.services import Services
from rollerblade.records import ObjectEvent
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


def need(query: Any, prefix: str) -> tuple[str, frozenset[str], tuple[str, ...]] | None:
    """(collection, equality fields, range-then-order fields) of the composite index a query
    needs, or None when single-field indexes serve it (equalities only, or one field)."""
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
    ordered = [o.field.field_path for o in pb.order_by]
    tail = tuple(f for f in dict.fromkeys([*ranged, *ordered]) if f != "__name__")
    if not tail or (not equal and len(tail) == 1):
        return None
    return collection, frozenset(equal), tail


def declared() -> list[tuple[str, list[str]]]:
    indexes = json.loads((ROOT / "firestore.indexes.json").read_text())["indexes"]
    return [(i["collectionGroup"], [f["fieldPath"] for f in i["fields"]]) for i in indexes]


def served(requirement: tuple[str, frozenset[str], tuple[str, ...]]) -> bool:
    collection, equal, tail = requirement
    return any(
        group == collection and set(fields[: len(equal)]) == equal and tuple(fields[len(equal) :]) == tail
        for group, fields in declared()
    )


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
    missing = {req for q in index.observed if (req := need(q, prefix)) and not served(req)}
    assert not missing, "add to firestore.indexes.json: " + "; ".join(
        f"{c}: {sorted(e)} then {list(t)}" for c, e, t in sorted(missing, key=str)
    )


def test_the_check_catches_a_missing_index() -> None:
    """The rule above, on a query shape no declared index serves."""
    assert not served(("records", frozenset({"s.suffix"}), ("n.`image.tr`",)))
    assert served(("records", frozenset({"dataset"}), ("path",)))
    assert served(("records", frozenset({"s.suffix"}), ("n.`participant.age`",)))


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
