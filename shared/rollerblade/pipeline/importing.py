"""Import a local BIDS folder as a new dataset: copy every file into storage, publish one
object event per file, and index them through the same handler a dropped file would use.

Files that cannot be imported safely (symlinks leaving the source, unreadable files) are
skipped and reported; files that are stored but have problems (bad names, corrupt NIfTI,
invalid JSON) are indexed with their error. Neither stops the import.
"""

from __future__ import annotations

import dataclasses
import datetime
import os
from collections.abc import Callable
from pathlib import Path

from rollerblade.abids import layout
from rollerblade.errors import AlreadyExists, InputError, NotFound, UnsafePathError
from rollerblade.pipeline.events import drain_object_events, publish_all
from rollerblade.ports import EventBus, Index, Storage
from rollerblade.records import Actor, DatasetInfo, ObjectEvent

Progress = Callable[[str, int, int], None]  # (stage, done, total)


@dataclasses.dataclass(frozen=True)
class ImportReport:
    dataset: str
    files: int
    records: int
    skipped: tuple[tuple[str, str], ...]  # (path, why): not stored
    errors: tuple[tuple[str, str], ...]  # (path, error): stored and indexed with an error
    warnings: int = 0  # records whose names break a schema rule (``exists(warning)``)


def source_files(source: Path) -> tuple[list[tuple[str, Path]], list[tuple[str, str]]]:
    """(dataset-relative path, real file) pairs under ``source``, and what was skipped."""
    root = source.resolve()
    files: list[tuple[str, Path]] = []
    skipped: list[tuple[str, str]] = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames.sort()
        for name in list(dirnames):
            full = Path(dirpath, name)
            if full.is_symlink():
                dirnames.remove(name)
                rel = full.relative_to(root).as_posix()
                target = full.resolve()
                if not target.is_relative_to(root):
                    skipped.append((rel, f"symlink to {target} leaves the source folder; not imported"))
                else:
                    skipped.append((rel, "symlinked folder inside the source; import its target instead"))
        for name in sorted(filenames):
            full = Path(dirpath, name)
            rel = full.relative_to(root).as_posix()
            if name.startswith("."):
                skipped.append((rel, "hidden file; not imported"))
                continue
            try:
                layout.check_relative_path(rel)
            except UnsafePathError as e:
                skipped.append((rel, e.reason))
                continue
            target = full.resolve()
            if not target.is_relative_to(root):
                skipped.append((rel, f"symlink to {target} leaves the source folder; not imported"))
                continue
            if not target.is_file():
                skipped.append((rel, "not a regular file (broken symlink or special file)"))
                continue
            files.append((rel, target))
    return files, skipped


def import_dataset(
    source: Path,
    *,
    dataset: str,
    storage: Storage,
    index: Index,
    bus: EventBus,
    actor: Actor,
    progress: Progress | None = None,
) -> ImportReport:
    """Import ``source`` as ``dataset`` (which must not exist yet)."""
    layout.check_dataset_name(dataset)
    if not source.is_dir():
        raise NotFound("source folder", str(source))
    prefix = layout.dataset_prefix(dataset)
    if index.get_dataset(name=dataset) is not None or next(storage.list(prefix=prefix), None) is not None:
        raise AlreadyExists("dataset", dataset, "choose another --dataset name")
    if not (source / "dataset_description.json").is_file():
        raise InputError(f"{source}: no dataset_description.json; is this the root of a BIDS dataset?")
    now = datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")
    index.put_dataset(info=DatasetInfo(name=dataset, owner=actor, created=now))
    files, skipped = source_files(source)
    events = []
    for done, (rel, path) in enumerate(files, start=1):
        try:
            info = storage.put_file(key=layout.dataset_key(dataset, rel), source=str(path))
        except OSError as e:
            skipped.append((rel, f"could not be read: {e.strerror or e}"))
            continue
        events.append(ObjectEvent("created", info.key, info.generation).to_message())
        if progress is not None and (done % 200 == 0 or done == len(files)):
            progress("upload", done, len(files))
    publish_all(bus, events)
    handled = 0

    def advance(n: int) -> None:
        nonlocal handled
        handled += n
        if progress is not None and (handled % 200 == 0 or handled == len(events)):
            progress("index", handled, len(events))

    report = drain_object_events(bus=bus, storage=storage, index=index, actor=actor, progress=advance)
    # The drain may also handle other datasets' pending events; report only this one's.
    errors = sorted(
        {(o.key[len(prefix) :], o.error) for o in report.outcomes if o.error is not None and o.key.startswith(prefix)}
    )
    stats = index.dataset_stats(name=dataset)
    return ImportReport(
        dataset=dataset,
        files=len(events),
        records=stats["records"],
        skipped=tuple(sorted(skipped)),
        errors=tuple(errors),
        warnings=stats["warnings"],
    )
