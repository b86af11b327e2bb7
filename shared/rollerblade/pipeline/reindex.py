"""Rebuild a dataset's index entries in batch from what storage holds.

Uses the same parsing and :func:`~rollerblade.pipeline.context.build_record` as the
incremental handler, so after any order of events the index equals what this builds.
Header reads and record building run in forked worker processes for large datasets.
"""

from __future__ import annotations

import concurrent.futures
import dataclasses
import multiprocessing as mp
import os
from collections.abc import Callable, Iterator

from rollerblade.abids import layout
from rollerblade.abids.paths import BidsPath
from rollerblade.errors import BidsNameError, NotFound
from rollerblade.pipeline.context import DatasetContext, build_record, parse_metadata
from rollerblade.pipeline.facts import read_facts
from rollerblade.pipeline.indexing import ensure_dataset, locate, unparsable_record, update_description
from rollerblade.ports import Index, Storage
from rollerblade.records import DERIVATIVES_PREFIX, Actor, MetadataFile, ObjectInfo, ScanRecord

Progress = Callable[[int, int], None]  # (done, total)


def _derivative_of(key: str) -> str | None:
    parts = key.split("/", 3)
    return parts[2] if len(parts) == 4 else None


#: (storage, dataset, context) of the running reindex, inherited by forked workers.
_JOB: tuple[Storage, str, DatasetContext] | None = None
#: Below this many files, worker processes cost more than they save.
PARALLEL_THRESHOLD = 2000


def _build_one(parsed: BidsPath) -> ScanRecord | None:
    assert _JOB is not None
    storage, dataset, context = _JOB
    try:
        file, image, error = read_facts(storage, layout.dataset_key(dataset, parsed.path), parsed)
    except NotFound:  # deleted while we were listing
        return None
    return build_record(dataset=dataset, parsed=parsed, file=file, image=image, error=error, context=context)


def _build_chunk(chunk: list[BidsPath]) -> list[ScanRecord | None]:
    return [_build_one(parsed) for parsed in chunk]


def _build_all(items: list[BidsPath], workers: int, storage: Storage) -> Iterator[ScanRecord | None]:
    """Build records: in forked worker processes for a local storage with many files
    (header parsing is CPU-bound Python), in threads for network storages (I/O-bound, and
    their connections must not be shared across a fork)."""
    processes = min(workers, os.cpu_count() or 1)
    forkable = storage.fork_safe and "fork" in mp.get_all_start_methods()
    if forkable and processes >= 2 and len(items) >= PARALLEL_THRESHOLD:
        size = 256
        chunks = [items[i : i + size] for i in range(0, len(items), size)]
        with concurrent.futures.ProcessPoolExecutor(processes, mp_context=mp.get_context("fork")) as pool:
            for built in pool.map(_build_chunk, chunks):
                yield from built
    elif not forkable and workers > 1 and len(items) > 1:
        with concurrent.futures.ThreadPoolExecutor(workers) as threads:
            yield from threads.map(_build_one, items)
    else:
        yield from map(_build_one, items)


@dataclasses.dataclass(frozen=True)
class ReindexReport:
    dataset: str
    objects: int
    records: int
    metadata: int
    errors: tuple[tuple[str, str], ...]  # (path, message)
    removed: int
    unfinished_import: bool = False  # the store holds part of an interrupted import


def reindex_dataset(
    dataset: str,
    *,
    storage: Storage,
    index: Index,
    actor: Actor,
    progress: Progress | None = None,
    workers: int = 4,
) -> ReindexReport:
    """Replace the dataset's records and metadata files by a fresh build from storage."""
    objects = list(storage.list(prefix=layout.dataset_prefix(dataset)))
    objects += [o for o in storage.list(prefix=DERIVATIVES_PREFIX) if _derivative_of(o.key) == dataset]
    if not objects and index.get_dataset(name=dataset) is None:
        raise NotFound("dataset", dataset)
    ensure_dataset(index, dataset, actor)
    data: dict[str, BidsPath] = {}
    unparsable: dict[str, tuple[ObjectInfo, str]] = {}
    metadata: list[MetadataFile] = []
    metadata_objects: list[tuple[ObjectInfo, BidsPath]] = []
    for obj in objects:
        _, inner, analysis = layout.split_key(obj.key)
        try:
            parsed = locate(inner, analysis)
        except BidsNameError as e:
            unparsable[e.path] = (obj, str(e))
            continue
        if parsed.kind == "data":
            data.setdefault(parsed.path, parsed)
        elif parsed.kind not in ("opaque", "document"):
            metadata_objects.append((obj, parsed))
    with concurrent.futures.ThreadPoolExecutor(max(1, workers)) as readers:  # network storages: many small reads
        contents = list(readers.map(lambda item: storage.read(key=item[0].key), metadata_objects))
    for (obj, parsed), content in zip(metadata_objects, contents, strict=True):
        metadata.append(parse_metadata(dataset=dataset, parsed=parsed, data=content, generation=obj.generation))
    context = DatasetContext(metadata)
    records = [
        unparsable_record(dataset, path, storage.stat(key=obj.key), error) for path, (obj, error) in unparsable.items()
    ]
    total = len(data) + len(records)
    done = len(records)

    global _JOB
    _JOB = (storage, dataset, context)
    try:
        for record in _build_all(list(data.values()), workers, storage):
            if record is not None:
                records.append(record)
            done += 1
            if progress is not None and (done % 500 == 0 or done == total):
                progress(done, total)
    finally:
        _JOB = None
    before = index.dataset_stats(name=dataset)["records"]
    index.replace_dataset(name=dataset, records=records, metadata=metadata)
    removed = max(0, before - len(records))
    for doc in metadata:
        if doc.kind == "description" and isinstance(doc.content, dict):
            update_description(index, dataset, doc)
    errors = [(r.path, r.error) for r in records if r.error] + [(m.path, m.error) for m in metadata if m.error]
    info = index.get_dataset(name=dataset)
    return ReindexReport(
        unfinished_import=info is not None and info.state == "importing",
        dataset=dataset,
        objects=len(objects),
        records=len(records),
        metadata=len(metadata),
        errors=tuple(sorted((p, e) for p, e in errors if e)),
        removed=removed,
    )
