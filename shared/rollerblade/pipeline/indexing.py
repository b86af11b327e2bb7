"""``index_object``: the one handler for every object event (created or deleted).

It reconciles the index with what storage holds *now* for the event's key, so events can
arrive in any order and any number of times: a ``created`` event for an object that is
gone is handled as a deletion, a ``deleted`` event for an object that exists again is
handled as a creation, and a duplicate rewrites nothing. A metadata file (sidecar,
participants.tsv, sessions.tsv) also refreshes every record it feeds. A file that cannot
be parsed is indexed with an ``error``; only storage/index outages raise.

Handlers run concurrently (several processes, Cloud Function instances) and each reads,
computes and writes without a lock. What makes that safe is *settling*: after writing,
a handler reads its inputs again (the object's generation in storage, the generations of
the metadata files it used) and, if any changed meanwhile, computes and writes again.
Whoever writes last has therefore seen the inputs every other writer left behind.
A metadata refresh rewrites records through :meth:`~rollerblade.ports.Index.refresh_records`,
which never overwrites a record that a newer object version or a deletion already changed.
"""

from __future__ import annotations

import dataclasses
import datetime
import functools
import logging
from collections.abc import Callable, Collection
from typing import Literal

from rollerblade.abids import layout, sidecars
from rollerblade.abids.paths import BidsPath, parse_derivative_path, parse_path, parse_record_path
from rollerblade.errors import BidsNameError, InputError, NotFound, TemporaryError
from rollerblade.pipeline.context import DatasetContext, build_record, parse_metadata, refreshed
from rollerblade.pipeline.facts import read_facts
from rollerblade.ports import Index, Storage
from rollerblade.query import ast
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

#: Write-and-check rounds before a handler gives up and asks for redelivery. Each extra
#: round means a concurrent writer changed an input in the meantime.
SETTLE_ROUNDS = 8

#: What a handler's result depended on: the object's generation (None: gone) and the
#: (path, generation) of every metadata file it read.
Inputs = tuple[int | None, frozenset[tuple[str, int]]]


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
        relpath, error = e.path, str(e)
        return _settle(
            lambda: _index_unparsable(event.key, dataset, relpath, error, storage=storage, index=index),
            lambda: (_generation(storage, event.key), frozenset()),
            event.key,
        )
    if parsed.kind in ("opaque", "document"):
        return IndexOutcome(event.key, "ignored")
    unit_key = layout.dataset_key(dataset, parsed.path)
    if parsed.kind == "data":
        folders = metadata_folders(parsed)
        return _settle(
            lambda: _index_data(unit_key, dataset, parsed, storage=storage, index=index),
            lambda: (
                unit_generation(storage, unit_key, parsed),
                signature(index.metadata(dataset=dataset, directories=folders)),
            ),
            unit_key,
        )
    return _settle(
        lambda: _index_metadata(unit_key, dataset, parsed, storage=storage, index=index),
        lambda: (_generation(storage, unit_key), refresh_signature(dataset, parsed, index)),
        unit_key,
    )


def _settle(step: Callable[[], tuple[IndexOutcome, Inputs]], current: Callable[[], Inputs], key: str) -> IndexOutcome:
    """Run ``step`` until the inputs it used are still the current ones after its write."""
    for _ in range(SETTLE_ROUNDS):
        outcome, used = step()
        if current() == used:
            return outcome
        log.info("inputs of %s changed while it was indexed; indexing it again", key)
    raise TemporaryError(f"{key} kept changing while it was indexed; it will be retried", delay=1.0)


def signature(files: list[MetadataFile]) -> frozenset[tuple[str, int]]:
    """What a result computed from ``files`` depends on: each file's path and generation."""
    return frozenset((m.path, m.generation) for m in files)


def _generation(storage: Storage, key: str) -> int | None:
    return storage.generation(key=key)


def unit_generation(storage: Storage, key: str, parsed: BidsPath) -> int | None:
    if not parsed.extension.endswith("/"):
        return _generation(storage, key)
    members = [m.generation for m in storage.list(prefix=key + "/")]
    return max(members) if members else None


@functools.lru_cache(maxsize=1 << 16)
def locate(inner: str, analysis: str | None) -> BidsPath:
    """Parse a path of a raw dataset, or of the derivative dataset ``analysis`` wrote
    (cached: a batch parses each key several times; the result is never modified)."""
    return parse_derivative_path(analysis, inner) if analysis else parse_path(inner)


def ensure_dataset(index: Index, dataset: str, actor: Actor) -> None:
    """Register a dataset that objects were dropped into (never overwrites a registration)."""
    if index.get_dataset(name=dataset) is None:
        now = datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")
        index.create_dataset(info=DatasetInfo(name=dataset, owner=actor, created=now))


def _index_data(
    key: str, dataset: str, parsed: BidsPath, *, storage: Storage, index: Index
) -> tuple[IndexOutcome, Inputs]:
    existing = index.get_record(dataset=dataset, path=parsed.path)
    context_files = index.metadata(dataset=dataset, directories=metadata_folders(parsed))
    try:
        file, image, error = read_facts(storage, key, parsed)
    except NotFound:
        if existing is not None:
            index.delete_records(keys=[(dataset, parsed.path)])
        return IndexOutcome(key, "deleted"), (None, signature(context_files))
    used: Inputs = (int(file["generation"]), signature(context_files))
    record = build_record(
        dataset=dataset, parsed=parsed, file=file, image=image, error=error, context=DatasetContext(context_files)
    )
    if record == existing:
        return IndexOutcome(key, "unchanged", error), used
    index.put_records(records=[record])
    return IndexOutcome(key, "indexed", error), used


def _index_unparsable(
    key: str, dataset: str, relpath: str, error: str, *, storage: Storage, index: Index
) -> tuple[IndexOutcome, Inputs]:
    """A file whose name is not valid BIDS: kept and indexed with its error."""
    try:
        info = storage.stat(key=key)
    except NotFound:
        index.delete_records(keys=[(dataset, relpath)])
        return IndexOutcome(key, "deleted"), (None, frozenset())
    record = unparsable_record(dataset, relpath, info, error)
    if index.get_record(dataset=dataset, path=relpath) != record:
        index.put_records(records=[record])
    return IndexOutcome(key, "indexed", error), (info.generation, frozenset())


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


def _index_metadata(
    key: str, dataset: str, parsed: BidsPath, *, storage: Storage, index: Index
) -> tuple[IndexOutcome, Inputs]:
    """Store the metadata file's parsed content, then refresh the records it feeds.

    The refresh runs even when the stored content was already current: a handler that
    crashed between the two steps is completed by the redelivered event.
    """
    current = {(m.path): m for m in index.metadata(dataset=dataset, directories=[parsed.directory])}
    existing = current.get(parsed.path)
    try:
        info = storage.stat(key=key)
        data = storage.read(key=key)
    except NotFound:
        if existing is not None:
            index.delete_metadata(keys=[(dataset, parsed.path)])
        count, basis = refresh(dataset, parsed, index=index)
        return IndexOutcome(key, "metadata" if existing else "unchanged", refreshed=count), (None, basis)
    doc = parse_metadata(dataset=dataset, parsed=parsed, data=data, generation=info.generation)
    if doc != existing:
        index.put_metadata(files=[doc])
    if parsed.kind == "description" and isinstance(doc.content, dict):
        update_description(index, dataset, doc)
    count, basis = refresh(dataset, parsed, index=index)
    action: Action = "metadata" if doc != existing or count else "unchanged"
    return IndexOutcome(key, action, doc.error, refreshed=count), (info.generation, basis)


def update_description(index: Index, dataset: str, doc: MetadataFile) -> None:
    info = index.get_dataset(name=dataset)
    if info is not None and info.description != doc.content:
        index.update_dataset(name=dataset, changes={"description": dict(doc.content)})


def feeds_records(changed: BidsPath, index: Index) -> bool:
    """Whether the records a metadata file feeds need recomputing when it changes: never
    when the index resolves metadata by reference."""
    return changed.kind not in ("description", "participants_json") and not index.resolves_metadata


def refresh_scope(changed: BidsPath) -> str:
    """The folder whose records a metadata file feeds (``""``: the whole dataset)."""
    return "" if changed.kind == "participants" else changed.directory


def refresh_context(dataset: str, changed: BidsPath, index: Index) -> list[MetadataFile]:
    """Every metadata file the records in the refreshed folder can use: those of the
    folder's ancestors and of every folder below it (never the whole dataset's)."""
    scope = refresh_scope(changed)
    return index.metadata(dataset=dataset, directories=sidecars.ancestors(scope), under=scope)


def refresh_signature(dataset: str, changed: BidsPath, index: Index) -> frozenset[tuple[str, int]]:
    """The metadata a refresh for ``changed`` computes from (none for files feeding no record)."""
    return signature(refresh_context(dataset, changed, index)) if feeds_records(changed, index) else frozenset()


def refresh(dataset: str, changed: BidsPath, *, index: Index) -> tuple[int, frozenset[tuple[str, int]]]:
    """Recompute the records a metadata file feeds; returns how many changed and the
    signature of the metadata they were computed from."""
    if not feeds_records(changed, index):
        return 0, frozenset()
    scope = refresh_scope(changed)
    files = refresh_context(dataset, changed, index)
    suffix = changed.suffix if changed.kind == "sidecar" else None
    return refresh_folder(dataset, scope, files, index=index, suffix=suffix), signature(files)


def refresh_folder(
    dataset: str,
    scope: str,
    files: list[MetadataFile],
    *,
    index: Index,
    suffix: str | None = None,
    skip: Collection[str] = (),
) -> int:
    """Recompute the records under folder ``scope`` (of one ``suffix``, if given; not
    those at ``skip`` paths) from ``files``; write those that changed, return how many."""
    context = DatasetContext(files)
    updates: list[ScanRecord] = []
    if suffix is None:
        candidates = index.records(dataset=dataset, prefix=scope + "/" if scope else "")
    else:  # a sidecar feeds one suffix: let the index select those records
        parts: list[ast.Node] = [ast.text_equals("dataset", dataset), ast.text_equals("suffix", suffix)]
        if scope:
            parts.append(ast.glob("path", scope + "/*"))
        candidates = index.query(node=ast.And(tuple(parts)))
    for record in candidates:
        if scope and not record.path.startswith(scope + "/"):
            continue  # a glob character in a folder name matched more than the folder
        if record.path in skip or (record.error is not None and not record.entities):
            continue  # unparsable name: nothing derived to refresh
        if suffix is not None and record.entities.get("suffix") != suffix:
            continue
        new = refreshed(record, parse_record_path(record.path), context)
        if new != record:
            updates.append(new)
    return index.refresh_records(records=updates) if updates else 0
