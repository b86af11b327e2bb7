"""Holding the cyclic garbage collector off while a batch of events is handled (the
dispatcher's batches, the import's drain)."""

from __future__ import annotations

import contextlib
import gc
from collections.abc import Iterator


@contextlib.contextmanager
def collector_held() -> Iterator[None]:
    """The cyclic garbage collector held off while a batch of events is handled; it runs
    again after.

    A batch allocates tens of thousands of containers that live until its end (records,
    their flat views, planned jobs). The collector would stop every 700 allocations and,
    as they are promoted to older generations, sweep the whole heap: 15 % of rule
    evaluation's time in ``bench/pipeline_bench.py``. Reference counting frees almost all
    of them anyway; what only the collector can free (cycles) waits for the batch's end.
    Left alone when something else turned the collector off (or another thread's batch
    holds it: the first to finish lets it run again)."""
    if not gc.isenabled():
        yield
        return
    gc.disable()
    try:
        yield
    finally:
        gc.enable()
