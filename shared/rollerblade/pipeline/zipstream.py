"""A selection as a zip stream: one valid BIDS folder per dataset, written as it is read.

The HTTP API sends it as the body of a download. Nothing is staged on disk: each file
is read from storage, added to the archive and the archive's new bytes are yielded, so
memory holds one file at a time. Compressed files (``.gz``, ``.zip``, ``.png`` ...) are
stored, the rest deflated.
"""

from __future__ import annotations

import time
import zipfile
from collections import defaultdict
from collections.abc import Iterable, Iterator

from rollerblade.pipeline.download import copy_record, write_dataset_files
from rollerblade.ports import Index, Storage
from rollerblade.records import ScanRecord

_STORED = (".gz", ".zip", ".png", ".jpg", ".jpeg", ".bz2", ".xz", ".zst")


class _Chunks:
    """A write-only, non-seekable file that keeps what was written until taken."""

    def __init__(self) -> None:
        self.parts: list[bytes] = []
        self.offset = 0

    def write(self, data: bytes) -> int:
        self.parts.append(bytes(data))
        self.offset += len(data)
        return len(data)

    def tell(self) -> int:
        return self.offset

    def flush(self) -> None:
        pass

    def take(self) -> bytes:
        out, self.parts = b"".join(self.parts), []
        return out


class _ZipSink:
    def __init__(self, storage: Storage, archive: zipfile.ZipFile, root: str) -> None:
        self.storage, self.archive, self.root = storage, archive, root

    def copy(self, key: str, path: str) -> None:
        self.write(path, self.storage.read(key=key))

    def write(self, path: str, data: bytes) -> None:
        info = zipfile.ZipInfo(f"{self.root}/{path}", date_time=time.gmtime()[:6])
        info.compress_type = zipfile.ZIP_STORED if path.endswith(_STORED) else zipfile.ZIP_DEFLATED
        info.external_attr = 0o644 << 16
        self.archive.writestr(info, data)


def zip_selection(storage: Storage, index: Index, records: Iterable[ScanRecord]) -> Iterator[bytes]:
    """Chunks of a zip holding ``<dataset>/...`` for each dataset of ``records``."""
    by_dataset: dict[str, list[ScanRecord]] = defaultdict(list)
    for record in records:
        by_dataset[record.dataset].append(record)
    out = _Chunks()
    with zipfile.ZipFile(out, "w") as archive:  # type: ignore[call-overload]  # write-only is enough
        for dataset, selected in sorted(by_dataset.items()):
            sink = _ZipSink(storage, archive, dataset)
            for record in selected:
                copy_record(storage, dataset, record, sink)
                yield out.take()
            write_dataset_files(storage, index, dataset, selected, sink)
            yield out.take()
    yield out.take()
