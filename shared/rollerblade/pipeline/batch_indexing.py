"""``index_objects``: many object events handled at once, as ``index_object`` would one by one.

An import or a dataset dropped into the bucket delivers thousands of events together.
Handled one by one, each costs several index round trips and a transaction; here a batch
shares them: one metadata read for every folder the batch needs, one write of the
metadata files, one write of the records, one refresh per distinct (folder, suffix).

The batch settles like a single handler: after writing, it reads every input again (each
object's generation, the metadata generations each result was computed from). An event
whose inputs changed meanwhile goes through :func:`~rollerblade.pipeline.indexing.index_object`,
which settles it on its own. Events the batch does not specialise (unparsable names,
ignored paths) go there directly, so the result is exactly the single-event one.
"""

from __future__ import annotations

import concurrent.futures
import dataclasses
from collections import defaultdict
from collections.abc import Sequence

from rollerblade.abids import layout, sidecars
from rollerblade.abids.paths import BidsPath
from rollerblade.errors import BidsNameError, InputError, NotFound
from rollerblade.pipeline import indexing
from rollerblade.pipeline.context import DatasetContext, build_record, parse_metadata
from rollerblade.pipeline.facts import read_facts
from rollerblade.pipeline.indexing import IndexOutcome, index_object
from rollerblade.ports import Index, Storage
from rollerblade.records import Actor, MetadataFile, ObjectEvent, ScanRecord


@dataclasses.dataclass
class _Item:
    event: ObjectEvent
    dataset: str
    parsed: BidsPath
    key: str  # the unit's key (a directory-format file's folder)
    generation: int | None = None
    used: frozenset[tuple[str, int]] = frozenset()
    outcome: IndexOutcome | None = None


def index_objects(events: Sequence[ObjectEvent], *, storage: Storage, index: Index, actor: Actor) -> list[IndexOutcome]:
    """Outcomes in the order of ``events`` (a duplicate in the batch gets its first's outcome)."""
    items: dict[str, _Item] = {}
    unit_of: list[str | None] = []  # per event: its item's key, or None when handled alone
    for event in events:
        try:
            dataset, inner, analysis = layout.split_key(event.key)
            parsed = indexing.locate(inner, analysis)
        except (InputError, BidsNameError):
            unit_of.append(None)
            continue
        if parsed.kind in ("opaque", "document"):
            unit_of.append(None)
            continue
        key = layout.dataset_key(dataset, parsed.path)
        items.setdefault(key, _Item(event, dataset, parsed, key))
        unit_of.append(key)
    by_dataset: dict[str, list[_Item]] = defaultdict(list)
    for item in items.values():
        by_dataset[item.dataset].append(item)
    for dataset, group in by_dataset.items():
        indexing.ensure_dataset(index, dataset, actor)
        _index_group(dataset, group, storage=storage, index=index, actor=actor)
    outcomes = []
    for event, unit in zip(events, unit_of, strict=True):
        if unit is None:
            outcomes.append(index_object(event, storage=storage, index=index, actor=actor))
        else:
            outcome = items[unit].outcome
            assert outcome is not None
            outcomes.append(outcome)
    return outcomes


def _index_group(dataset: str, group: list[_Item], *, storage: Storage, index: Index, actor: Actor) -> None:
    metas = [item for item in group if item.parsed.kind != "data"]
    datas = [item for item in group if item.parsed.kind == "data"]
    _write_metadata(dataset, metas, storage=storage, index=index)
    _write_records(dataset, datas, storage=storage, index=index)
    # One refresh per folder a changed metadata file feeds, skipping the records this
    # batch has just built (they were computed from the metadata written above).
    written = {item.parsed.path for item in datas}
    contexts = _scope_contexts(dataset, metas, index)
    counts: dict[str, int] = {}
    for item in metas:
        if not indexing.feeds_records(item.parsed, index):
            continue
        scope = indexing.refresh_scope(item.parsed)
        if scope not in counts:
            counts[scope] = indexing.refresh_folder(dataset, scope, contexts[scope], index=index, skip=written)
        item.used = indexing.signature(contexts[scope])
        assert item.outcome is not None
        item.outcome = dataclasses.replace(item.outcome, refreshed=counts[scope])
    _settle(dataset, group, storage=storage, index=index, actor=actor)


def _scope_contexts(dataset: str, metas: list[_Item], index: Index) -> dict[str, list[MetadataFile]]:
    """What :func:`~rollerblade.pipeline.indexing.refresh_context` reads for each refreshed
    folder, with the folders' shared ancestors (participants.tsv ...) read once."""
    scopes = {indexing.refresh_scope(i.parsed) for i in metas if indexing.feeds_records(i.parsed, index)}
    if "" in scopes:
        everything = index.metadata(dataset=dataset)
        return {scope: everything for scope in scopes}
    chains = {scope: set(sidecars.ancestors(scope)) for scope in scopes}
    shared = index.metadata(dataset=dataset, directories=set().union(*chains.values())) if scopes else []
    contexts = {}
    for scope in scopes:
        below = index.metadata(dataset=dataset, directories=(), under=scope)
        seen = {m.path for m in below}
        above = [m for m in shared if m.directory in chains[scope] and m.path not in seen]
        contexts[scope] = sorted(above + below, key=lambda m: m.path)
    return contexts


def _write_metadata(dataset: str, items: list[_Item], *, storage: Storage, index: Index) -> None:
    if not items:
        return
    existing = {m.path: m for m in index.metadata(dataset=dataset, directories={i.parsed.directory for i in items})}
    docs: list[MetadataFile] = []
    gone: list[tuple[str, str]] = []
    for item in items:
        old = existing.get(item.parsed.path)
        try:
            info = storage.stat(key=item.key)
            data = storage.read(key=item.key)
        except NotFound:
            if old is not None:
                gone.append((dataset, item.parsed.path))
            item.outcome = IndexOutcome(item.key, "metadata" if old else "unchanged")
            continue
        item.generation = info.generation
        doc = parse_metadata(dataset=dataset, parsed=item.parsed, data=data, generation=info.generation)
        if doc != old:
            docs.append(doc)
        item.outcome = IndexOutcome(item.key, "metadata" if doc != old else "unchanged", doc.error)
        if item.parsed.kind == "description" and isinstance(doc.content, dict):
            indexing.update_description(index, dataset, doc)
    if gone:
        index.delete_metadata(keys=gone)
    if docs:
        index.put_metadata(files=docs)


def _write_records(dataset: str, items: list[_Item], *, storage: Storage, index: Index) -> None:
    if not items:
        return
    folders = {folder for item in items for folder in indexing.metadata_folders(item.parsed)}
    files = index.metadata(dataset=dataset, directories=folders)
    context = DatasetContext(files)
    by_folder = _by_folder(files)

    def facts(item: _Item) -> tuple[_Item, ScanRecord | None]:
        try:
            file, image, error = read_facts(storage, item.key, item.parsed)
        except NotFound:
            return item, None
        item.generation = int(file["generation"])
        record = build_record(dataset=dataset, parsed=item.parsed, file=file, image=image, error=error, context=context)
        return item, record

    if storage.fork_safe or len(items) < 8:
        built = list(map(facts, items))
    else:  # network storage: reads are round trips
        with concurrent.futures.ThreadPoolExecutor(8) as pool:
            built = list(pool.map(facts, items))
    records = []
    gone = []
    for item, record in built:
        item.used = _data_signature(item, by_folder)
        if record is None:
            gone.append((dataset, item.parsed.path))
            item.outcome = IndexOutcome(item.key, "deleted")
        else:
            records.append(record)
            item.outcome = IndexOutcome(item.key, "indexed", record.error)
    if gone:
        index.delete_records(keys=gone)
    if records:
        index.put_records(records=records)


def _by_folder(files: list[MetadataFile]) -> dict[str, list[MetadataFile]]:
    grouped: dict[str, list[MetadataFile]] = defaultdict(list)
    for doc in files:
        grouped[doc.directory].append(doc)
    return grouped


def _data_signature(item: _Item, by_folder: dict[str, list[MetadataFile]]) -> frozenset[tuple[str, int]]:
    """What a data file's record was computed from: the metadata of its folders."""
    folders = indexing.metadata_folders(item.parsed)
    return indexing.signature([doc for folder in folders for doc in by_folder.get(folder, ())])


def _settle(dataset: str, group: list[_Item], *, storage: Storage, index: Index, actor: Actor) -> None:
    """Re-read every input; an event whose inputs changed is handled again on its own."""
    datas = [item for item in group if item.parsed.kind == "data"]
    folders = {folder for item in datas for folder in indexing.metadata_folders(item.parsed)}
    by_folder = _by_folder(index.metadata(dataset=dataset, directories=folders) if datas else [])
    contexts = _scope_contexts(dataset, [item for item in group if item.parsed.kind != "data"], index)
    for item in group:
        now = indexing.unit_generation(storage, item.key, item.parsed)
        if item.parsed.kind == "data":
            current = _data_signature(item, by_folder)
        elif indexing.feeds_records(item.parsed, index):
            current = indexing.signature(contexts[indexing.refresh_scope(item.parsed)])
        else:
            current = frozenset()
        if now != item.generation or current != item.used:
            item.outcome = index_object(item.event, storage=storage, index=index, actor=actor)
