"""The SQLite index is shared by threads (``serve``: the HTTP API's threads and the event
loop): each reads through a connection of its own, so a reader sees only committed data,
never the rows of a write transaction another thread has open."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

from rollerblade.adapters import sqlite_index
from rollerblade.query import ast
from rollerblade.records import ScanRecord


def t1w(sub: int) -> ScanRecord:
    label = f"{sub:03d}"
    return ScanRecord(
        dataset="study",
        path=f"sub-{label}/anat/sub-{label}_T1w.nii.gz",
        entities={"sub": label, "suffix": "T1w", "datatype": "anat", "extension": ".nii.gz"},
        meta={"MagneticFieldStrength": 3},
        participant={},
        session={},
        image={},
        file={"generation": 1},
    )


def test_a_reader_thread_never_sees_another_threads_uncommitted_writes(tmp_path: Path) -> None:
    index = sqlite_index.SqliteIndex(tmp_path / "index.sqlite")
    index.put_records(records=[t1w(s) for s in range(3)])
    everything = ast.All()
    seen: list[int] = []

    class Gated(list[ScanRecord]):
        """put_records reads its records a second time after inserting them, inside its
        transaction (to drop stale layers): another thread counts at that moment."""

        reads = 0

        def __iter__(self) -> Iterator[ScanRecord]:
            Gated.reads += 1
            if Gated.reads == 2:
                reader = threading.Thread(target=lambda: seen.append(index.count(node=everything)))
                reader.start()
                reader.join(timeout=60)
            return super().__iter__()

    index.put_records(records=Gated(t1w(s) for s in range(3, 10)))
    assert Gated.reads >= 2, "the reader did not run inside the write transaction"
    assert seen == [3]  # the committed state, not the 10 rows being written
    assert index.count(node=everything) == 10
    done: list[int] = []
    reader = threading.Thread(target=lambda: done.append(index.count(node=everything)))
    reader.start()
    reader.join(timeout=60)
    assert done == [10]  # after the commit, every thread sees it
    index.close()


def test_results_begun_in_a_thread_that_ended_are_read_to_the_end(tmp_path: Path) -> None:
    """A streamed response is read by whichever pool thread is free, and the thread that
    began the query may end meanwhile: its connection must outlive it while the results
    are being read, and be forgotten by the index (closed once nothing holds it)."""
    index = sqlite_index.SqliteIndex(tmp_path / "index.sqlite")
    index.put_records(records=[t1w(s) for s in range(1200)])  # more than one batch of rows
    begun: list[object] = []

    def begin() -> None:
        results = index.query(node=ast.All())
        begun.extend([results, next(results), index._db])

    starter = threading.Thread(target=begin)
    starter.start()
    starter.join(timeout=60)
    later = threading.Thread(target=lambda: index.count(node=ast.All()))  # its first use forgets the ended one's
    later.start()
    later.join(timeout=60)
    results, first, its_connection = begun
    assert its_connection not in index._connections.values()  # forgotten by the index
    rest = list(results)  # type: ignore[call-overload]
    assert [first.path, *(r.path for r in rest)] == sorted(t1w(s).path for s in range(1200))  # type: ignore[attr-defined]
    index.close()
