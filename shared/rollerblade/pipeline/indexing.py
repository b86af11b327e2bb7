"""``index_object``: the one handler for every object event (created or deleted).

It reconciles the index with what storage holds *now* for the event's key, so events can
arrive in any order and any number of times: a ``created`` event for an object that is
gone is handled as a deletion, a ``deleted`` event for an object that exists again is
handled as a creation, and a duplicate rewrites nothing. A metadata file (sidecar,
participants.tsv, sessions.tsv) also refreshes every record it feeds. A file that cannot
be parsed is indexed with an ``error``; only storage/index outages raise.
"""

from __future__ import annotations

import dataclasses
import datetime
import logging
from typing import Literal

from rollerblade.abids import layout, sidecars
from rollerblade.abids.paths import BidsPath, parse_derivative_path, parse_path, parse_record_path
from rollerblade.errors import BidsNameError, InputError, NotFound
from rollerblade.pipeline.context import DatasetContext, build_record, parse_metadata, refreshed
from rollerblade.pipeline.facts import read_facts
from rollerblade.ports import Index, Storage
from rollerblade.records import (
    Actor,
    DatasetInfo,
    MetadataFile,
    ObjectEvent,
    ObjectInfo,
    ScanRecord,
)

log = logging.getLogger(__name__)

Action = Literal["indexed", "unchanged", "deleted", "metadata", "ignored"]


@dataclasses.dataclass(frozen=True)
class IndexOutcome:
    """What handling one event did. ``error`` is the file's problem, if it has one."""

    key: str
    action: Action
    error: str | None = None
    refreshed: int = 0


def index_object(event: ObjectEvent, *, storage: Storage, index: Index, actor: Actor) -> IndexOutcome:
    """Bring the index in line with storage for ``event.key``."""
    try:
        dataset, inner, analysis = layout.split_key(event.key)
    except InputError as e:
        log.warning("ignoring object event: %s", e)
        return IndexOutcome(event.key, "ignored", str(e))
    ensure_dataset(index, dataset, actor)
    try:
        parsed = locate(inner, analysis)
    except BidsNameError as e:
        return _index_unparsable(event.key, dataset, e.path, str(e), storage=storage, index=index)
    if parsed.kind in ("opaque", "document"):
        return IndexOutcome(event.key, "ignored")
    unit_key = layout.dataset_key(dataset, parsed.path)
    if parsed.kind == "data":
        return _index_data(unit_key, dataset, parsed, storage=storage, index=index)
    return _index_metadata(unit_key, dataset, parsed, storage=storage, index=index)


def locate(inner: str, analysis: str | None) -> BidsPath:
    """Parse a path of a raw dataset, or of the derivative dataset ``analysis`` wrote."""
    return parse_derivative_path(analysis, inner) if analysis else parse_path(inner)


def ensure_dataset(index: Index, dataset: str, actor: Actor) -> None:
    if index.get_dataset(name=dataset) is None:
        now = datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")
        index.put_dataset(info=DatasetInfo(name=dataset, owner=actor, created=now))


def _index_data(key: str, dataset: str, parsed: BidsPath, *, storage: Storage, index: Index) -> IndexOutcome:
    existing = index.get_record(dataset=dataset, path=parsed.path)
    try:
        file, image, error = read_facts(storage, key, parsed)
    except NotFound:
        if existing is not None:
            index.delete_records(keys=[(dataset, parsed.path)])
        return IndexOutcome(key, "deleted")
    if existing is not None and existing.generation > int(file["generation"]):
        return IndexOutcome(key, "unchanged", existing.error)  # a newer version is indexed already
    context = DatasetContext(index.metadata(dataset=dataset, directories=metadata_folders(parsed)))
    record = build_record(dataset=dataset, parsed=parsed, file=file, image=image, error=error, context=context)
    if record == existing:
        return IndexOutcome(key, "unchanged", error)
    index.put_records(records=[record])
    return IndexOutcome(key, "indexed", error)


def _index_unparsable(
    key: str, dataset: str, relpath: str, error: str, *, storage: Storage, index: Index
) -> IndexOutcome:
    """A file whose name is not valid BIDS: kept and indexed with its error."""
    try:
        info = storage.stat(key=key)
    except NotFound:
        index.delete_records(keys=[(dataset, relpath)])
        return IndexOutcome(key, "deleted")
    record = unparsable_record(dataset, relpath, info, error)
    if index.get_record(dataset=dataset, path=relpath) != record:
        index.put_records(records=[record])
    return IndexOutcome(key, "indexed", error)


def metadata_folders(parsed: BidsPath) -> list[str]:
    """Folders whose metadata files can feed a data file: its inheritance chain, plus the
    dataset root (participants.tsv) and the subject folder (sessions.tsv)."""
    folders = sidecars.ancestors(parsed.directory) + [""]
    if "sub" in parsed.entities:
        folders.append(f"sub-{parsed.entities['sub']}")
    return sorted(set(folders))


def unparsable_record(dataset: str, relpath: str, info: ObjectInfo, error: str) -> ScanRecord:
    """The record of a file whose name could not be parsed: storage facts and the error."""
    return ScanRecord(
        dataset=dataset,
        path=relpath,
        entities={},
        meta={},
        participant={},
        session={},
        image={},
        file={"key": info.key, "size": info.size, "md5": info.md5, "generation": info.generation},
        error=error,
    )


def _index_metadata(key: str, dataset: str, parsed: BidsPath, *, storage: Storage, index: Index) -> IndexOutcome:
    current = {(m.path): m for m in index.metadata(dataset=dataset, directories=[parsed.directory])}
    existing = current.get(parsed.path)
    try:
        info = storage.stat(key=key)
        data = storage.read(key=key)
    except NotFound:
        if existing is None:
            return IndexOutcome(key, "unchanged")
        index.delete_metadata(keys=[(dataset, parsed.path)])
        return IndexOutcome(key, "metadata", refreshed=_refresh(dataset, parsed, index=index))
    if existing is not None and existing.generation > info.generation:
        return IndexOutcome(key, "unchanged", existing.error)
    doc = parse_metadata(dataset=dataset, parsed=parsed, data=data, generation=info.generation)
    if doc == existing:
        return IndexOutcome(key, "unchanged", doc.error)
    index.put_metadata(files=[doc])
    if parsed.kind == "description" and isinstance(doc.content, dict):
        update_description(index, dataset, doc)
    return IndexOutcome(key, "metadata", doc.error, refreshed=_refresh(dataset, parsed, index=index))


def update_description(index: Index, dataset: str, doc: MetadataFile) -> None:
    info = index.get_dataset(name=dataset)
    if info is not None:
        index.put_dataset(info=dataclasses.replace(info, description=dict(doc.content)))


def _refresh(dataset: str, changed: BidsPath, *, index: Index) -> int:
    """Recompute the records a metadata file feeds; returns how many changed."""
    if changed.kind == "description" or changed.kind == "participants_json":
        return 0
    prefix = "" if changed.kind == "participants" else (changed.directory + "/" if changed.directory else "")
    context = DatasetContext(index.metadata(dataset=dataset))
    updates: list[ScanRecord] = []
    for record in index.records(dataset=dataset, prefix=prefix):
        if record.error is not None and not record.entities:
            continue  # unparsable name: nothing derived to refresh
        if changed.kind == "sidecar" and record.entities.get("suffix") != changed.suffix:
            continue
        new = refreshed(record, parse_record_path(record.path), context)
        if new != record:
            updates.append(new)
    if updates:
        index.put_records(records=updates)
    return len(updates)
