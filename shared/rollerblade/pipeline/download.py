"""Download what a query selects as valid BIDS: one folder per source dataset.

Each folder holds the selected files, every sidecar they inherit from,
``dataset_description.json`` and README (generated if the source has none), and
``participants.tsv`` / ``sessions.tsv`` reduced to the selected participants and
sessions (``participants.json`` is copied). A folder is written under a fresh temporary
name (``.<dataset>.partial-XXXXXXXX``, never one that exists already) and renamed when
complete, so an interrupted download never looks finished; a failed download removes
its own temporary folder and nothing else.
"""

from __future__ import annotations

import dataclasses
import json
import secrets
import shutil
from collections import defaultdict
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Protocol

from rollerblade.abids import layout, sidecars, tables
from rollerblade.abids.paths import parse_record_path
from rollerblade.abids.schema import vocabulary
from rollerblade.errors import AlreadyExists, InputError, NotFound
from rollerblade.pipeline.context import DatasetContext
from rollerblade.pipeline.querying import find_records
from rollerblade.ports import Index, Storage
from rollerblade.records import Actor, ScanRecord

Progress = Callable[[int, int], None]


@dataclasses.dataclass(frozen=True)
class DownloadReport:
    destination: Path
    datasets: dict[str, int]  # dataset -> files written
    records: int


def download_query(
    text: str,
    destination: Path,
    *,
    storage: Storage,
    index: Index,
    actor: Actor,
    progress: Progress | None = None,
) -> DownloadReport:
    """Write the query's selection under ``destination/<dataset>/``."""
    records = find_records(text, index=index, actor=actor)
    return download_records(records, destination, storage=storage, index=index, progress=progress)


def download_records(
    records: Iterable[ScanRecord],
    destination: Path,
    *,
    storage: Storage,
    index: Index,
    progress: Progress | None = None,
) -> DownloadReport:
    """Write ``records`` under ``destination/<dataset>/``."""
    by_dataset: dict[str, list[ScanRecord]] = defaultdict(list)
    for record in records:
        by_dataset[record.dataset].append(record)
    if by_dataset and destination.exists() and not destination.is_dir():
        raise InputError(f"{destination} is not a folder; download into a folder (new or existing)")
    for dataset in by_dataset:
        _check_target(destination / dataset)
    total = sum(len(r) for r in by_dataset.values())
    done = 0
    written: dict[str, int] = {}
    for dataset, selected in by_dataset.items():

        def advance() -> None:
            nonlocal done
            done += 1
            if progress is not None:
                progress(done, total)

        written[dataset] = _download_dataset(storage, index, dataset, selected, destination, advance)
    return DownloadReport(destination=destination, datasets=written, records=total)


def _check_target(target: Path) -> None:
    """Refuse a ``destination/<dataset>`` that is anything but missing or an empty real folder."""
    if target.is_symlink():
        raise InputError(
            f"{target} is a symbolic link and is in the way of the download; "
            "remove or rename it, or download into another destination"
        )
    if target.exists() and not target.is_dir():
        raise InputError(
            f"{target} is a file, not a folder, and is in the way of the download; "
            "move or rename it, or download into another destination"
        )
    if target.is_dir() and any(target.iterdir()):
        raise AlreadyExists("folder", str(target), "download into an empty or new destination")


def _fresh_folder(parent: Path, prefix: str) -> Path:
    """Create and return a new folder ``parent/<prefix><random>``; never reuses an existing path.

    Like :func:`tempfile.mkdtemp` but with the usual permissions (umask), since this folder
    becomes the user's dataset folder.
    """
    parent.mkdir(parents=True, exist_ok=True)
    for _ in range(100):
        folder = parent / f"{prefix}{secrets.token_hex(4)}"
        try:
            folder.mkdir()
        except FileExistsError:
            continue
        return folder
    raise FileExistsError(f"no free temporary folder name {prefix}* in {parent}")


def _download_dataset(
    storage: Storage,
    index: Index,
    dataset: str,
    records: list[ScanRecord],
    destination: Path,
    on_record: Callable[[], None],
) -> int:
    """Write one dataset in a temporary folder of its own, then rename it to ``destination/<dataset>``."""
    partial = _fresh_folder(destination, f".{dataset}.partial-")
    try:
        count = write_selection(storage, index, dataset, records, partial, on_record=on_record)
        target = destination / dataset
        _check_target(target)  # again: something may have appeared while we were writing
        if target.exists():
            target.rmdir()  # an empty real folder, checked just above
        partial.rename(target)
    except BaseException:
        shutil.rmtree(partial, ignore_errors=True)  # ours: created by _fresh_folder above
        raise
    return count


class FolderSink:
    """Writes a selection into a local folder."""

    def __init__(self, storage: Storage, root: Path) -> None:
        self.storage, self.root = storage, root

    def copy(self, key: str, path: str) -> None:
        out = self.root / path
        out.parent.mkdir(parents=True, exist_ok=True)
        self.storage.download(key=key, destination=str(out))

    def write(self, path: str, data: bytes) -> None:
        out = self.root / path
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_bytes(data)


@dataclasses.dataclass
class SlicePlan:
    """A selection as storage keys (``inputs``: path -> key) and generated files
    (``files``: path -> bytes), not yet written anywhere: what a job's executor stages."""

    storage: Storage
    inputs: dict[str, str] = dataclasses.field(default_factory=dict)
    files: dict[str, bytes] = dataclasses.field(default_factory=dict)

    def copy(self, key: str, path: str) -> None:
        if self.storage.generation(key=key) is None:
            raise NotFound("object", key)
        self.inputs[path] = key

    def write(self, path: str, data: bytes) -> None:
        self.files[path] = data


class Sink(Protocol):
    """Where a selection is written: a folder, a job's slice plan, a zip stream."""

    def copy(self, key: str, path: str) -> None: ...

    def write(self, path: str, data: bytes) -> None: ...


def write_selection(
    storage: Storage,
    index: Index,
    dataset: str,
    records: list[ScanRecord],
    root: Path | Sink,
    on_record: Callable[[], None] | None = None,
) -> int:
    """Write ``records`` of ``dataset`` under ``root`` as a valid BIDS dataset (or add them
    to a :class:`SlicePlan` or another sink); returns the file count."""
    sink: Sink = FolderSink(storage, root) if isinstance(root, Path) else root
    count = 0
    for record in records:
        count += copy_record(storage, dataset, record, sink)
        if on_record is not None:
            on_record()
    return count + write_dataset_files(storage, index, dataset, records, sink)


def _copy(storage: Storage, dataset: str, path: str, sink: Sink) -> None:
    sink.copy(layout.dataset_key(dataset, path), path)


def copy_record(storage: Storage, dataset: str, record: ScanRecord, sink: Sink) -> int:
    if record.entities.get("extension", "").endswith("/"):
        members = list(storage.list(prefix=layout.dataset_key(dataset, record.path) + "/"))
        prefix = layout.dataset_prefix(dataset)
        for member in members:
            _copy(storage, dataset, member.key[len(prefix) :], sink)
        return len(members)
    _copy(storage, dataset, record.path, sink)
    return 1


def write_dataset_files(storage: Storage, index: Index, dataset: str, records: list[ScanRecord], sink: Sink) -> int:
    context = DatasetContext(index.metadata(dataset=dataset))
    needed: set[str] = set()
    for record in records:
        if record.entities:
            parsed = parse_record_path(record.path)
            _, used = sidecars.effective_metadata(parsed, context.sidecars_for(parsed.directory))
            needed.update(used)
    for path in sorted(needed):
        _copy(storage, dataset, path, sink)
    count = len(needed)
    count += _write_description(storage, dataset, sink)
    count += _write_readme(storage, dataset, sink)
    subjects = {f"sub-{r.entities['sub']}" for r in records if "sub" in r.entities}
    sessions = {(f"sub-{r.entities['sub']}", f"ses-{r.entities['ses']}") for r in records if "ses" in r.entities}
    count += _reduce_table(
        storage, dataset, "participants.tsv", sink, id_column="participant_id", keep=lambda row_id: row_id in subjects
    )
    count += _copy_if_exists(storage, dataset, "participants.json", sink)
    for sub in sorted(subjects):
        path = f"{sub}/{sub}_sessions.tsv"
        count += _reduce_table(
            storage,
            dataset,
            path,
            sink,
            id_column="session_id",
            keep=lambda ses, sub=sub: (sub, ses) in sessions,  # type: ignore[misc]
        )
        count += _copy_if_exists(storage, dataset, f"{sub}/{sub}_sessions.json", sink)
    return count


def _copy_if_exists(storage: Storage, dataset: str, path: str, sink: Sink) -> int:
    try:
        _copy(storage, dataset, path, sink)
    except NotFound:
        return 0
    return 1


def _write_description(storage: Storage, dataset: str, sink: Sink) -> int:
    if _copy_if_exists(storage, dataset, "dataset_description.json", sink):
        return 1
    description = {"Name": dataset, "BIDSVersion": vocabulary().bids_version, "DatasetType": "raw"}
    sink.write("dataset_description.json", (json.dumps(description, indent=2) + "\n").encode())
    return 1


def _write_readme(storage: Storage, dataset: str, sink: Sink) -> int:
    for name in ("README", "README.md", "README.txt", "README.rst"):
        if _copy_if_exists(storage, dataset, name, sink):
            return 1
    sink.write(
        "README.md", f"# {dataset}\n\nA selection of dataset {dataset!r} downloaded with Rollerblade.\n".encode()
    )
    return 1


def _reduce_table(
    storage: Storage, dataset: str, path: str, sink: Sink, *, id_column: str, keep: Callable[[str], bool]
) -> int:
    """Copy a TSV keeping the header and the rows whose ``id_column`` value ``keep`` accepts.

    Only rows the index used are kept (a ragged, repeated or non-UTF-8 row was reported
    at import and left out there too). The id column may be anywhere in the header;
    columns and rows keep their original order. A table without ``id_column`` or with an
    unreadable header (invalid BIDS, reported at import) keeps only what can be read.
    """
    try:
        data = storage.read(key=layout.dataset_key(dataset, path))
    except NotFound:
        return 0
    try:
        content, _ = tables.parse_tsv(data, path, id_column=id_column)
    except InputError:
        content = {"rows": {}}
    used = content["rows"]
    raw_lines = data.split(b"\n")
    try:
        header = tables.decode_text(raw_lines[0].removesuffix(b"\r"), path)
    except InputError:
        return 0
    kept = [header]
    columns = [c.strip() for c in header.split("\t")]
    if id_column in columns:
        at = columns.index(id_column)
        emitted: set[str] = set()
        for raw in raw_lines[1:]:
            try:
                line = raw.removesuffix(b"\r").decode("utf-8")
            except UnicodeDecodeError:
                continue
            cells = line.split("\t")
            row_id = cells[at].strip() if len(cells) == len(columns) else ""
            if row_id in used and row_id not in emitted and keep(row_id):
                emitted.add(row_id)
                kept.append(line)
    sink.write(path, ("\n".join(kept) + "\n").encode("utf-8"))
    return 1
