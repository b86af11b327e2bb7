"""Capped log files for executors: keep the head and the tail of a huge log, note the gap."""

from __future__ import annotations

import datetime
from typing import BinaryIO


def now() -> str:
    return datetime.datetime.now(datetime.UTC).isoformat(timespec="milliseconds")


class CappedLog:
    """Write at most ``limit`` bytes: the first half as it comes, the last half at close."""

    def __init__(self, path: str, limit: int) -> None:
        self._file: BinaryIO = open(path, "wb")  # noqa: SIM115 - closed in close()
        self._half = max(1, limit // 2)
        self._head = 0
        self._tail = bytearray()
        self.total = 0

    def write(self, data: bytes) -> None:
        self.total += len(data)
        if self._head < self._half:
            take = data[: self._half - self._head]
            self._file.write(take)
            self._head += len(take)
            data = data[len(take) :]
        if data:
            self._tail += data
            if len(self._tail) > 2 * self._half:
                del self._tail[: len(self._tail) - self._half]

    @property
    def truncated(self) -> bool:
        return self.total > self._head + min(len(self._tail), self._half)

    def close(self) -> None:
        tail = bytes(self._tail[-self._half :]) if self._tail else b""
        omitted = self.total - self._head - len(tail)
        if omitted > 0:
            self._file.write(f"\n[... {omitted} bytes of log omitted ...]\n".encode())
        self._file.write(tail)
        self._file.close()
