"""Storage in a local directory laid out exactly like the bucket (``ROOT/datasets/...``).

Writes go to a temporary file in the same folder and are renamed into place, so readers
never see half an object. Keys are checked safe (no ``..``, absolute paths ...) on every
call; writes also refuse a destination that resolves outside the root through a symlink
(Rollerblade itself never creates symlinks in the bucket). The generation is the file's
``st_mtime_ns``, forced to grow on every write; the md5 is computed on ``stat`` (the same
hex digest GCS reports).
"""

from __future__ import annotations

import hashlib
import os
import shutil
import stat
import tempfile
from collections.abc import Iterator
from pathlib import Path

from rollerblade.abids.layout import check_relative_path
from rollerblade.errors import NotFound, UnsafePathError
from rollerblade.ports import Storage
from rollerblade.records import ObjectInfo

_CHUNK = 1 << 20


class LocalDirStorage(Storage):
    fork_safe = True

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = Path(root).resolve()
        self.root.mkdir(parents=True, exist_ok=True)
        self._safe_parents: set[str] = set()  # folders checked to resolve inside the root

    def __repr__(self) -> str:
        return f"LocalDirStorage({str(self.root)!r})"

    def _path(self, key: str) -> str:
        check_relative_path(key)
        return os.path.join(self.root, key)

    def _write(self, key: str, fill: os.PathLike[str] | bytes) -> ObjectInfo:
        path = self._path(key)  # plain strings: pathlib's parsing cost as much as the copy
        parent = os.path.dirname(path)
        if parent not in self._safe_parents:
            if not Path(parent).resolve().is_relative_to(self.root):
                raise UnsafePathError(key, "resolves outside the storage root (symlink?)")
            os.makedirs(parent, exist_ok=True)
            self._safe_parents.add(parent)
        try:
            previous = os.stat(path).st_mtime_ns
        except FileNotFoundError:
            previous = 0
        try:
            fd, tmp = tempfile.mkstemp(dir=parent, prefix=".tmp-")
        except FileNotFoundError:  # emptied and removed since it was checked (a delete, here or elsewhere)
            os.makedirs(parent, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=parent, prefix=".tmp-")
        digest = hashlib.md5(usedforsecurity=False)
        size = 0
        try:
            with os.fdopen(fd, "wb") as out:
                if isinstance(fill, bytes):
                    out.write(fill)
                    digest.update(fill)
                    size = len(fill)
                else:
                    with open(fill, "rb") as src:
                        while chunk := src.read(_CHUNK):
                            out.write(chunk)
                            digest.update(chunk)
                            size += len(chunk)
            generation = max(os.stat(tmp).st_mtime_ns, previous + 1)
            os.utime(tmp, ns=(generation, generation))
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        return ObjectInfo(key=key, size=size, generation=generation, md5=digest.hexdigest())

    def generation(self, *, key: str) -> int | None:
        try:
            st = os.stat(self._path(key))
        except (FileNotFoundError, NotADirectoryError):
            return None
        return None if stat.S_ISDIR(st.st_mode) else st.st_mtime_ns

    def put_bytes(self, *, key: str, data: bytes) -> ObjectInfo:
        return self._write(key, data)

    def put_file(self, *, key: str, source: str) -> ObjectInfo:
        return self._write(key, Path(source))

    def stat(self, *, key: str) -> ObjectInfo:
        path = self._path(key)
        digest = hashlib.md5(usedforsecurity=False)
        try:
            with open(path, "rb") as f:
                st = os.fstat(f.fileno())
                while chunk := f.read(_CHUNK):
                    digest.update(chunk)
        except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
            raise NotFound("object", key) from None
        return ObjectInfo(key=key, size=st.st_size, generation=st.st_mtime_ns, md5=digest.hexdigest())

    def read_edges(self, *, key: str, head: int, tail: int) -> tuple[ObjectInfo, bytes, bytes]:
        digest = hashlib.md5(usedforsecurity=False)
        try:
            with open(self._path(key), "rb") as f:
                st = os.fstat(f.fileno())
                first = f.read(max(head, _CHUNK))
                digest.update(first)
                last = first
                while chunk := f.read(_CHUNK):
                    digest.update(chunk)
                    last = chunk if len(chunk) >= tail else last + chunk
        except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
            raise NotFound("object", key) from None
        info = ObjectInfo(key=key, size=st.st_size, generation=st.st_mtime_ns, md5=digest.hexdigest())
        return info, first[:head], last[-tail:] if st.st_size >= tail else b""

    def read(self, *, key: str, start: int = 0, length: int | None = None) -> bytes:
        path = self._path(key)
        try:
            with open(path, "rb") as f:
                if start < 0:
                    f.seek(max(0, os.fstat(f.fileno()).st_size + start))
                elif start:
                    f.seek(start)
                return f.read() if length is None else f.read(length)
        except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
            raise NotFound("object", key) from None

    def download(self, *, key: str, destination: str) -> None:
        path = self._path(key)
        try:
            shutil.copyfile(path, destination)
        except (FileNotFoundError, IsADirectoryError):
            raise NotFound("object", key) from None

    def list(self, *, prefix: str) -> Iterator[ObjectInfo]:
        base = prefix.rsplit("/", 1)[0] if "/" in prefix else ""
        top = self.root / base if base else self.root
        found: list[ObjectInfo] = []
        for dirpath, dirnames, filenames in os.walk(top):
            dirnames.sort()
            rel = os.path.relpath(dirpath, self.root)
            rel = "" if rel == "." else rel.replace(os.sep, "/") + "/"
            for name in filenames:
                key = rel + name
                if key.startswith(prefix) and not name.startswith(".tmp-"):
                    st = os.stat(os.path.join(dirpath, name))
                    found.append(ObjectInfo(key=key, size=st.st_size, generation=st.st_mtime_ns))
        found.sort(key=lambda o: o.key)
        return iter(found)

    def delete(self, *, key: str) -> None:
        path = Path(self._path(key))
        path.unlink(missing_ok=True)
        parent = path.parent
        while parent != self.root:
            try:
                parent.rmdir()  # drop empty folders, as a bucket has none
            except OSError:
                break
            self._safe_parents.discard(str(parent))
            parent = parent.parent
