"""The data use cases as a principal performs them: list datasets, query, count, show,
download, import, delete, reindex.

Entry points (CLI, HTTP API, demo) call these, never the operations below them
(``querying``, ``download``, ``importing``, ``deleting``, ``reindex``): an import-linter
contract holds them to it. Each function asks the guard first, and a query is narrowed
to the datasets the principal may read before it reaches the index, so counts, records,
known fields and did-you-mean suggestions never reveal a dataset the principal cannot
read. Derivatives belong to their source dataset (their records carry its name), so they
follow its grants.
"""

from __future__ import annotations

import collections
import dataclasses
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

from rollerblade.abids import layout, sidecars
from rollerblade.abids.paths import parse_record_path
from rollerblade.access.model import Principal
from rollerblade.errors import InputError, NotFound
from rollerblade.pipeline import deleting, importing, querying, reindex, sharing
from rollerblade.pipeline import download as downloading
from rollerblade.pipeline.guard import narrow
from rollerblade.pipeline.services import Services
from rollerblade.pipeline.zipstream import zip_selection
from rollerblade.query import ast
from rollerblade.records import DERIVATIVES_PREFIX, Actor, DatasetInfo, ScanRecord


@dataclasses.dataclass(frozen=True)
class DatasetSummary:
    info: DatasetInfo
    stats: Mapping[str, int]

    def to_doc(self) -> dict[str, Any]:
        return {**self.info.to_doc(), **self.stats}


def list_datasets(services: Services, principal: Principal) -> list[DatasetSummary]:
    """The datasets the principal may read, with their record, error and warning counts."""
    readable = services.guard.readable(principal)
    index = services.index
    return [
        DatasetSummary(info, index.dataset_stats(name=info.name))
        for info in index.datasets()
        if readable is None or info.name in readable
    ]


def get_dataset(services: Services, principal: Principal, name: str) -> DatasetSummary:
    info = services.catalog.get_dataset(name=name)
    if info is None:
        raise NotFound("dataset", name)
    services.guard.require(principal, "dataset", name, "read", action="dataset-show")
    return DatasetSummary(info, services.catalog.dataset_stats(name=name))


def compile_scoped(services: Services, principal: Principal, text: str) -> ast.Node | None:
    """Parse ``text``, check its fields against those of the readable datasets only, and
    narrow it to them; None when the principal may read no dataset."""
    readable = services.guard.readable(principal)
    node = querying.compile_query(text, index=services.index, datasets=readable)
    return narrow(node, readable)


def count(services: Services, principal: Principal, text: str) -> int:
    node = compile_scoped(services, principal, text)
    return 0 if node is None else services.index.count(node=node)


def find(
    services: Services,
    principal: Principal,
    text: str,
    *,
    limit: int | None = None,
    after: tuple[str, str] | None = None,
) -> Iterator[ScanRecord]:
    """Records ``text`` selects among those the principal may read, ordered by (dataset,
    path); ``after`` resumes past that (dataset, path) (a page cursor)."""
    node = compile_scoped(services, principal, text)
    if node is None:
        return iter(())
    if after is not None:
        node = ast.And((node, _past(*after)))
    return services.index.query(node=node, limit=limit)


def _past(dataset: str, path: str) -> ast.Node:
    """Records after (dataset, path) in (dataset, path) order, as a query tree."""
    value = ast.Value(dataset, None, 0)
    return ast.Or(
        (
            ast.Compare(ast.Field("dataset", 0), ">", value),
            ast.And(
                (ast.text_equals("dataset", dataset), ast.Compare(ast.Field("path", 0), ">", ast.Value(path, None, 0)))
            ),
        )
    )


def known_fields(services: Services, principal: Principal) -> list[str]:
    """The dynamic fields (``meta.*``, ``participant.*`` ...) of the readable datasets."""
    return sorted(services.index.known_fields(datasets=services.guard.readable(principal)))


def show(services: Services, principal: Principal, dataset: str, path: str) -> dict[str, Any]:
    """Everything the index knows about one file, with the participants.json column notes."""
    services.guard.require(principal, "dataset", dataset, "read", action="show")
    record = services.index.get_record(dataset=dataset, path=path)
    if record is None:
        raise NotFound("record", f"{dataset}/{path}")
    doc: dict[str, Any] = dict(record.to_doc())
    doc["meta_sources"] = _meta_sources(services, record)
    units = {
        m.path: m.content
        for m in services.index.metadata(dataset=dataset, directories=[""])
        if m.kind == "participants_json" and isinstance(m.content, dict)
    }
    if units:
        doc["participant_columns"] = units.get("participants.json")
    return doc


def _meta_sources(services: Services, record: ScanRecord) -> dict[str, str]:
    """Which sidecar each effective metadata key was inherited from (nearest wins)."""
    try:
        parsed = parse_record_path(record.path)
    except InputError:  # a name that is not BIDS inherits nothing
        return {}
    files = services.index.metadata(dataset=record.dataset, directories=sidecars.ancestors(parsed.directory))
    return sidecars.inherited_from(parsed, files)


#: Most problem files a dataset summary lists.
MAX_PROBLEMS = 500


def dataset_summary(services: Services, principal: Principal, name: str) -> dict[str, Any]:
    """A dataset at a glance: counts, participants and sessions (ages, sexes), its
    managers and the files with index errors or warnings, each with its message."""
    summary = get_dataset(services, principal, name)
    participants: dict[str, Mapping[str, Any]] = {}
    sessions: set[tuple[str, str]] = set()
    problems: list[dict[str, str | None]] = []
    for record in services.index.records(dataset=name):
        sub, ses = record.entities.get("sub"), record.entities.get("ses")
        if sub and not record.path.startswith(DERIVATIVES_PREFIX):
            participants.setdefault(sub, record.participant)
            if ses:
                sessions.add((sub, ses))
        if (record.error or record.warning) and len(problems) < MAX_PROBLEMS:
            problems.append({"path": record.path, "error": record.error, "warning": record.warning})
    ages = [row["age"] for row in participants.values() if isinstance(row.get("age"), (int, float))]
    sexes = collections.Counter(str(row["sex"]) for row in participants.values() if row.get("sex") is not None)
    access = sharing.access_show(services, principal, f"dataset:{name}")
    return {
        **summary.to_doc(),
        "participants": len(participants),
        "sessions": len(sessions),
        "ages": sorted(ages),
        "sex": dict(sorted(sexes.items())),
        "problems": problems,
        "managers": access["managers"],
    }


def read_file(services: Services, principal: Principal, dataset: str, path: str) -> tuple[ScanRecord, bytes]:
    """The bytes of one indexed file of a readable dataset (the scan viewer's source)."""
    services.guard.require(principal, "dataset", dataset, "read", action="read-file")
    record = services.index.get_record(dataset=dataset, path=path)
    if record is None:
        raise NotFound("record", f"{dataset}/{path}")
    data = services.storage.read(key=layout.dataset_key(dataset, record.path))
    services.guard.record(principal, "read-file", "dataset", dataset, path)
    return record, data


def download(
    services: Services,
    principal: Principal,
    text: str,
    destination: Path,
    *,
    progress: Callable[[int, int], None] | None = None,
) -> downloading.DownloadReport:
    """Write the readable records ``text`` selects under ``destination/<dataset>/``."""
    records = list(find(services, principal, text))
    report = downloading.download_records(
        records, destination, storage=services.storage, index=services.index, progress=progress
    )
    services.guard.record(principal, "download", "query", text, f"{report.records} records into {destination}")
    return report


def download_zip(services: Services, principal: Principal, text: str) -> Iterator[bytes]:
    """The readable selection of ``text`` as a zip stream, one BIDS folder per dataset."""
    records = list(find(services, principal, text))
    services.guard.record(principal, "download", "query", text, f"{len(records)} records as zip")
    return zip_selection(services.storage, services.index, records)


def import_dataset(
    services: Services,
    principal: Principal,
    source: Path,
    dataset: str,
    *,
    progress: importing.Progress | None = None,
    indexed_by_deployment: bool = False,
    lease: float = 30.0,
    wait: float = 600.0,
) -> importing.ImportReport:
    """Import ``source`` as a new dataset (its importer becomes its manager), or finish an
    interrupted import (its importer, or anyone who may write the dataset)."""
    existing = services.catalog.get_dataset(name=dataset)
    if existing is not None and not (existing.state == "importing" and existing.owner == principal.name):
        services.guard.require(principal, "dataset", dataset, "write", action="import")
    claimed = False

    def claim_then(stage: str, done: int, total: int) -> None:
        nonlocal claimed
        if not claimed:  # the name is ours by now: the import registers it before any progress
            sharing.claim(services, principal, "dataset", dataset)
            claimed = True
        if progress is not None:
            progress(stage, done, total)

    report = importing.import_dataset(
        source,
        dataset=dataset,
        storage=services.storage,
        index=services.index,
        bus=None if indexed_by_deployment else services.bus,
        actor=Actor(principal.name),
        progress=claim_then,
        lease=lease,
        wait=wait,
    )
    sharing.claim(services, principal, "dataset", dataset)
    services.guard.record(principal, "import", "dataset", dataset, f"{report.files} files from {source}")
    return report


def plan_delete(services: Services, principal: Principal, dataset: str) -> deleting.DeletePlan:
    plan = deleting.plan_delete(dataset, storage=services.storage, index=services.index)
    services.guard.require(principal, "dataset", dataset, "write", action="delete")
    return plan


def delete_dataset(
    services: Services,
    principal: Principal,
    plan: deleting.DeletePlan,
    *,
    progress: Callable[[int, int], None] | None = None,
) -> None:
    """Delete a planned dataset (files, derivatives, records) and every grant on it."""
    services.guard.require(principal, "dataset", plan.dataset, "write", action="delete")
    deleting.delete_dataset(
        plan, storage=services.storage, index=services.index, actor=Actor(principal.name), progress=progress
    )
    services.guard.access.drop_resource(kind="dataset", resource=plan.dataset)
    services.guard.record(principal, "delete", "dataset", plan.dataset, f"{len(plan.keys)} files")


def reindex_dataset(
    services: Services,
    principal: Principal,
    dataset: str,
    *,
    progress: Callable[[int, int], None] | None = None,
    workers: int = 4,
) -> reindex.ReindexReport:
    if services.catalog.get_dataset(name=dataset) is not None:  # an unregistered one: admins (below)
        services.guard.require(principal, "dataset", dataset, "write", action="reindex")
    else:
        services.guard.require_admin(principal, action="reindex")
    report = reindex.reindex_dataset(
        dataset,
        storage=services.storage,
        index=services.index,
        actor=Actor(principal.name),
        progress=progress,
        workers=workers,
    )
    services.guard.record(principal, "reindex", "dataset", dataset, f"{report.records} records")
    return report


def stored_datasets(services: Services, principal: Principal) -> list[str]:
    """Every dataset the principal may write, registered or only present in the bucket
    (what ``reindex`` without names rebuilds); unregistered ones for admins only."""
    writable = services.guard.holding(principal, "dataset", "write")
    names = {info.name for info in services.catalog.datasets()}
    if writable is None:
        for obj in services.storage.list(prefix="datasets/"):
            names.add(obj.key.split("/")[1])
        return sorted(names)
    return sorted(names & writable)
