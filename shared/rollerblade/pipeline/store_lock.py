"""One event loop at a time per store: the lock ``run`` and ``serve`` hold while they run jobs."""

from __future__ import annotations

import contextlib
import fcntl
import os
from collections.abc import Iterator
from pathlib import Path

from rollerblade.errors import InputError


@contextlib.contextmanager
def exclusive_run(workdir: Path, *, role: str = "run", wait_for_serve: bool = False) -> Iterator[bool]:
    """One event loop at a time per store runs jobs (``run`` or ``serve``): the orphan
    cleanup at its start must not kill the containers of another live one.

    Yields True when this process holds the store. When ``serve`` holds it and
    ``wait_for_serve`` is set, yields False (the caller watches ``serve`` do the work);
    otherwise refuses."""
    workdir.mkdir(parents=True, exist_ok=True)
    with open(workdir / "run.lock", "a+") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            lock.seek(0)
            holder = lock.read().strip()
            if wait_for_serve and holder.startswith("serve"):
                yield False
                return
            raise InputError(
                f"another rollerblade {holder.split()[0] if holder else 'run'} is in progress in this store "
                f"({workdir}); wait for it to finish"
            ) from None
        try:
            lock.truncate(0)
            lock.write(f"{role} {os.getpid()}\n")
            lock.flush()
            yield True
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)
