"""Rebuild a dataset's index entries in batch from what storage holds.

Uses the same parsing and :func:`~rollerblade.pipeline.context.build_record` as the
incremental handler, so after any order of events the index equals what this builds.
Header reads and record building run in forked worker processes for large datasets.
"""

from __future__ import annotations

import collections
import concurrent.futures
import contextlib
import dataclasses
import gc
import itertools
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
#: Data files per task sent to a worker process.
CHUNK = 256
#: Tasks in flight per worker process: enough to keep them busy while the parent writes.
WINDOW = 3
#: Records between two progress reports.
PROGRESS_EVERY = 500


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


@contextlib.contextmanager
def _building(items: list[BidsPath], workers: int, storage: Storage) -> Iterator[Iterator[ScanRecord | None]]:
    """Records built from ``items``, in order: in forked worker processes for a local
    storage with many files (header parsing is CPU-bound Python), in threads for network
    storages (I/O-bound, and their connections must not be shared across a fork).

    The workers are forked on entry, before the caller opens its write transaction, and
    hold at most :data:`WINDOW` chunks per worker in flight: a caller that writes the
    records as they come keeps only those in memory."""
    processes = min(workers, os.cpu_count() or 1)
    forkable = storage.fork_safe and "fork" in mp.get_all_start_methods()
    if forkable and processes >= 2 and len(items) >= PARALLEL_THRESHOLD:
        chunks = iter([items[i : i + CHUNK] for i in range(0, len(items), CHUNK)])
        # The workers inherit the parent's objects (the dataset's context, its listing).
        # Frozen, the collector leaves them alone in the workers, so it does not copy
        # every page of them into each (the gc module's advice for fork without exec).
        gc.freeze()
        try:
            with concurrent.futures.ProcessPoolExecutor(processes, mp_context=mp.get_context("fork")) as pool:
                pending = collections.deque(
                    pool.submit(_build_chunk, c) for c in itertools.islice(chunks, WINDOW * processes)
                )

                def results() -> Iterator[ScanRecord | None]:
                    while pending:
                        built = pending.popleft().result()
                        pending.extend(pool.submit(_build_chunk, c) for c in itertools.islice(chunks, 1))
                        yield from built

                yield results()
        finally:
            gc.unfreeze()
    elif not forkable and workers > 1 and len(items) > 1:
        with concurrent.futures.ThreadPoolExecutor(workers) as threads:
            yield threads.map(_build_one, items)
    else:
        yield map(_build_one, items)


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
    if storage.fork_safe:  # a local storage: a thread per read would cost more than the read
        contents = [storage.read(key=obj.key) for obj, _ in metadata_objects]
    else:  # network storages: many small reads, each a round trip
        with concurrent.futures.ThreadPoolExecutor(max(1, workers)) as readers:
            contents = list(readers.map(lambda item: storage.read(key=item[0].key), metadata_objects))
    for (obj, parsed), content in zip(metadata_objects, contents, strict=True):
        metadata.append(parse_metadata(dataset=dataset, parsed=parsed, data=content, generation=obj.generation))
    context = DatasetContext(metadata)
    unparsed = [
        unparsable_record(dataset, path, storage.stat(key=obj.key), error) for path, (obj, error) in unparsable.items()
    ]
    total = len(data) + len(unparsed)
    done = written = 0
    errors = [(m.path, m.error) for m in metadata if m.error]

    def stream(built: Iterator[ScanRecord | None]) -> Iterator[ScanRecord]:
        """The records as they are built, counted, their errors kept, progress reported."""
        nonlocal done, written
        for record in itertools.chain(unparsed, built):
            done += 1
            if record is not None:
                written += 1
                if record.error:
                    errors.append((record.path, record.error))
                yield record
            if progress is not None and (done % PROGRESS_EVERY == 0 or done == total):
                progress(done, total)

    before = index.dataset_stats(name=dataset)["records"]
    global _JOB
    _JOB = (storage, dataset, context)
    try:
        with _building(list(data.values()), workers, storage) as built:
            index.replace_dataset(name=dataset, records=stream(built), metadata=metadata)
    finally:
        _JOB = None
    removed = max(0, before - written)
    for doc in metadata:
        if doc.kind == "description" and isinstance(doc.content, dict):
            update_description(index, dataset, doc)
    info = index.get_dataset(name=dataset)
    return ReindexReport(
        unfinished_import=info is not None and info.state == "importing",
        dataset=dataset,
        objects=len(objects),
        records=written,
        metadata=len(metadata),
        errors=tuple(sorted((p, e) for p, e in errors if e)),
        removed=removed,
    )
