"""Import a local BIDS folder as a new dataset: claim the name, copy every file into
storage, and have every file indexed through the object events a dropped file would send.

On the embedded default the import publishes those events and drains them itself; into a
deployment, whose functions index what lands in the bucket, it waits for them instead.
The name is held by a renewed lease, so an interrupted import is finished by running it
again, and a running one is never taken over.

Files that cannot be imported safely (symlinks leaving the source, unreadable files) are
skipped and reported; files that are stored but have problems (bad names, corrupt NIfTI,
invalid JSON) are indexed with their error. Neither stops the import.
"""

from __future__ import annotations

import dataclasses
import datetime
import hashlib
import math
import os
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

from rollerblade.abids import layout
from rollerblade.abids.paths import parse_path
from rollerblade.errors import AlreadyExists, BidsNameError, InputError, NotFound, TemporaryError, UnsafePathError
from rollerblade.pipeline.events import drain_object_events, publish_all
from rollerblade.ports import EventBus, Index, Storage
from rollerblade.query import ast
from rollerblade.records import Actor, DatasetInfo, ObjectEvent, ObjectInfo

Progress = Callable[[str, int, int], None]  # (stage, done, total)


#: Events are published every this many stored files.
PUBLISH_CHUNK = 500


class _Claim:
    """This import's hold on the dataset name: a token and a lease it renews while it runs,
    so that a killed import's name can be taken over once the lease lapses, and a running
    one's never."""

    def __init__(self, dataset: str, index: Index, lease: float) -> None:
        self.dataset, self.index, self.lease = dataset, index, lease
        self.token = uuid.uuid4().hex
        self.renewed = 0.0

    def fields(self) -> dict[str, Any]:
        self.renewed = time.time()
        return {"claim": self.token, "lease_until": self.renewed + self.lease}

    def renew(self) -> None:
        """Extend the lease (cheaply: at most a few times per lease); raise if lost."""
        if time.time() - self.renewed < self.lease / 4:
            return
        if not self.index.update_dataset(name=self.dataset, changes=self.fields(), expect={"claim": self.token}):
            raise AlreadyExists("dataset", self.dataset, "another import took it over while this one stalled")

    def release(self) -> None:
        changes = {"state": "ready", "claim": "", "lease_until": 0.0}
        if not self.index.update_dataset(name=self.dataset, changes=changes, expect={"claim": self.token}):
            raise AlreadyExists("dataset", self.dataset, "another import took it over while this one stalled")


def _claim(
    dataset: str, source: Path, *, storage: Storage, index: Index, actor: Actor, lease: float
) -> tuple[_Claim, bool]:
    """Register ``dataset`` as being imported from ``source`` by us; True when this takes
    over an unfinished import of the same source. Raises ``AlreadyExists`` otherwise."""
    claim = _Claim(dataset, index, lease)
    origin = str(source.resolve())
    now = datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")
    info = DatasetInfo(name=dataset, owner=actor, created=now, state="importing", source=origin, **claim.fields())
    if index.create_dataset(info=info):
        if next(storage.list(prefix=layout.dataset_prefix(dataset)), None) is None:
            return claim, False
        # objects dropped into the bucket under this name without an import: not ours
        index.delete_dataset(name=dataset)
        raise AlreadyExists("dataset", dataset, "the store holds files under this name; choose another --dataset")
    existing = index.get_dataset(name=dataset)
    if existing is None or existing.state != "importing":
        raise AlreadyExists("dataset", dataset, "choose another --dataset name")
    if existing.source != origin:
        hint = f"an unfinished import from {existing.source} holds it: run that import again, or delete the dataset"
        raise AlreadyExists("dataset", dataset, hint)
    wait = existing.lease_until - time.time()
    if wait > 0:
        hint = (
            f"an import of it from {existing.source} is running; if it was killed, run this again "
            f"in {math.ceil(wait)} s to finish it"
        )
        raise AlreadyExists("dataset", dataset, hint)
    if not index.update_dataset(name=dataset, changes=claim.fields(), expect={"claim": existing.claim}):
        raise AlreadyExists("dataset", dataset, "another run took over the unfinished import first")
    return claim, True


def _stored(storage: Storage, key: str, path: Path) -> ObjectInfo | None:
    """The stored object of an interrupted import, if it holds this file already."""
    try:
        info = storage.stat(key=key)
    except NotFound:
        return None
    if (
        info.size != path.stat().st_size
        or info.md5 != hashlib.md5(path.read_bytes(), usedforsecurity=False).hexdigest()
    ):
        return None
    return info


def _index_here(
    dataset: str,
    files: int,
    *,
    storage: Storage,
    index: Index,
    bus: EventBus,
    actor: Actor,
    claim: _Claim,
    progress: Progress | None,
) -> list[tuple[str, str]]:
    """Drain the object events (this import's and any other pending); this dataset's errors."""
    handled = 0

    def advance(n: int) -> None:
        nonlocal handled
        handled += n
        claim.renew()
        if progress is not None and (handled % 200 == 0 or handled == files):
            progress("index", handled, files)

    report = drain_object_events(bus=bus, storage=storage, index=index, actor=actor, progress=advance)
    prefix = layout.dataset_prefix(dataset)
    # The drain may also handle other datasets' pending events; report only this one's.
    return sorted(
        {(o.key[len(prefix) :], o.error) for o in report.outcomes if o.error is not None and o.key.startswith(prefix)}
    )


def _await_deployment(
    dataset: str, uploaded: list[str], *, index: Index, wait: float, claim: _Claim, progress: Progress | None
) -> list[tuple[str, str]]:
    """Wait until the index holds a record for every uploaded data file and a document for
    every metadata file (the deployment's functions index them); this dataset's errors."""
    records: set[str] = set()
    metadata = 0
    for rel in uploaded:
        try:
            parsed = parse_path(rel)
        except BidsNameError as e:
            records.add(e.path)  # indexed with its error
            continue
        if parsed.kind == "data":
            records.add(parsed.path)
        elif parsed.kind not in ("opaque", "document"):
            metadata += 1
    deadline = time.monotonic() + wait
    while True:
        stats = index.dataset_stats(name=dataset)
        if progress is not None:
            progress("index", min(stats["records"], len(records)), len(records))
        if stats["records"] >= len(records) and stats["metadata"] >= metadata:
            break
        if time.monotonic() > deadline:
            raise TemporaryError(
                f"the deployment indexed {stats['records']} of {len(records)} files of {dataset!r} in {wait:.0f} s; "
                "is its index_object function running? Run the same import again to wait longer",
                delay=wait,
            )
        claim.renew()
        time.sleep(0.5)
    node = ast.And((ast.text_equals("dataset", dataset), ast.Exists(ast.Field("error", 0))))
    errors = [(r.path, str(r.error)) for r in index.query(node=node)]
    errors += [(m.path, m.error) for m in index.metadata(dataset=dataset) if m.error]
    return sorted(errors)


@dataclasses.dataclass(frozen=True)
class ImportReport:
    dataset: str
    files: int
    records: int
    skipped: tuple[tuple[str, str], ...]  # (path, why): not stored
    errors: tuple[tuple[str, str], ...]  # (path, error): stored and indexed with an error
    warnings: int = 0  # records whose names break a schema rule (``exists(warning)``)
    resumed: bool = False  # this finished an interrupted import


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
            # Folders that are links are never entered, so only a linked file can leave the
            # source (resolving every path would cost more than the rest of the walk).
            target = full.resolve() if full.is_symlink() else full
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
    bus: EventBus | None,
    actor: Actor,
    progress: Progress | None = None,
    lease: float = 30.0,
    wait: float = 600.0,
) -> ImportReport:
    """Import ``source`` as ``dataset``, a new name, or finish an interrupted import of the
    same source into it.

    The name is claimed atomically (of two concurrent imports of one name, one fails) and
    held with a ``lease`` (seconds) the import keeps renewing.

    With a ``bus`` (the embedded default) the import indexes: it publishes each file's
    object event and drains them. Without one, a deployment indexes what lands in its
    bucket (notifications reach its index_object function), so the import does not index
    the files a second time: it waits up to ``wait`` seconds for the index to show them.
    Events are published as files land, in chunks, so a killed import leaves its stored
    files' events queued; running the same import again stores what is missing, publishes
    every file's event again (handling is idempotent) and marks the dataset ready.
    """
    layout.check_dataset_name(dataset)
    if not source.is_dir():
        raise NotFound("source folder", str(source))
    if not (source / "dataset_description.json").is_file():
        raise InputError(f"{source}: no dataset_description.json; is this the root of a BIDS dataset?")
    claim, resuming = _claim(dataset, source, storage=storage, index=index, actor=actor, lease=lease)
    files, skipped = source_files(source)
    uploaded: list[str] = []
    chunk: list[dict[str, Any]] = []
    for done, (rel, path) in enumerate(files, start=1):
        key = layout.dataset_key(dataset, rel)
        try:
            info = _stored(storage, key, path) if resuming else None
            if info is None:
                info = storage.put_file(key=key, source=str(path))
        except OSError as e:
            skipped.append((rel, f"could not be read: {e.strerror or e}"))
            continue
        uploaded.append(rel)
        chunk.append(ObjectEvent("created", info.key, info.generation).to_message())
        if bus is not None and len(chunk) >= PUBLISH_CHUNK:
            publish_all(bus, chunk)
            chunk = []
        if progress is not None and (done % 200 == 0 or done == len(files)):
            progress("upload", done, len(files))
        claim.renew()
    if bus is None:
        errors = _await_deployment(dataset, uploaded, index=index, wait=wait, claim=claim, progress=progress)
    else:
        publish_all(bus, chunk)
        errors = _index_here(
            dataset, len(uploaded), storage=storage, index=index, bus=bus, actor=actor, claim=claim, progress=progress
        )
    claim.release()
    stats = index.dataset_stats(name=dataset)
    return ImportReport(
        resumed=resuming,
        dataset=dataset,
        files=len(uploaded),
        records=stats["records"],
        skipped=tuple(sorted(skipped)),
        errors=tuple(errors),
        warnings=stats["warnings"],
    )
