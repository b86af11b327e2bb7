"""Real handlers run at once: several processes (SQLite) or clients (Firestore emulator)
drain one durable queue of object events, with duplicates, shuffled order, objects
rewritten and deleted while they run, and a worker killed mid-batch. The index they
leave must equal a batch ``reindex`` of the bucket.

The interleaving that lost sidecar metadata before indexing settled its writes (a data
file and its sidecar handled at the same moment, each missing the other's write) is rare
per pair, so ``test_data_file_and_its_sidecar_at_the_same_moment`` forces it on a real
index; it failed before the fix. The parallel runs check everything else at once.
"""

from __future__ import annotations

import multiprocessing as mp
import os
import random
import signal
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from rollerblade.adapters import local_bus, local_dir, sqlite_index
from rollerblade.demo.cohort import FULL, SITES, make_participants, write_dataset
from rollerblade.pipeline import reindex
from rollerblade.pipeline.events import OBJECTS_TOPIC, drain_object_events, publish_all
from rollerblade.ports import EventBus, Index, Storage
from rollerblade.records import ObjectEvent
from tests.conftest import ACTOR

LEASE = 1.5  # seconds before a killed worker's messages are delivered again


@pytest.fixture(scope="module")
def source(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A full-modality dataset (sidecars at three levels, participants, sessions): 4 subjects."""
    return write_dataset(
        tmp_path_factory.mktemp("concurrent") / "ds",
        SITES[1],
        make_participants(4, np.random.default_rng(5)),
        sessions=2,
        modalities=FULL,
        images="tiny",
    )


def snapshot(index: Index) -> tuple[list[object], list[object]]:
    return (
        [r.to_doc() for r in index.records(dataset="ds")],
        [m.to_doc() for m in index.metadata(dataset="ds")],
    )


def upload_all(storage: Storage, bus: EventBus, root: Path, rng: random.Random) -> list[str]:
    """Put every file, then publish the events in a shuffled order, a data file's and its
    sidecar's side by side (so that two handlers take them at the same moment, as parallel
    push deliveries do), and a third of them delivered twice."""
    keys = []
    for path in sorted(root.rglob("*")):
        if path.is_file():
            keys.append(storage.put_file(key=f"datasets/ds/{path.relative_to(root).as_posix()}", source=str(path)).key)
    groups: dict[str, list[str]] = {}
    for key in keys:
        groups.setdefault(key.split(".", 1)[0], []).append(key)
    ordered = list(groups.values())
    rng.shuffle(ordered)
    events = []
    for group in ordered:
        rng.shuffle(group)
        events += [ObjectEvent("created", key).to_message() for key in group]
    events += rng.sample(events, len(events) // 3)
    publish_all(bus, events)
    return keys


def mutate(storage: Storage, bus: EventBus, keys: list[str], rng: random.Random) -> None:
    """While the handlers run: rewrite sidecars and participants.tsv, delete and re-add data."""
    sidecars = [k for k in keys if k.endswith(".json") and "dataset_description" not in k]
    data = [k for k in keys if k.endswith(".nii.gz")]  # the ones still there
    for step in range(12):
        time.sleep(rng.uniform(0.0, 0.05))
        choice = step % 4
        if choice == 0:
            key = rng.choice(sidecars)
            info = storage.put_bytes(key=key, data=b'{"RepetitionTime": %d, "Rewritten": %d}' % (step + 1, step))
        elif choice == 1:
            table = storage.read(key="datasets/ds/participants.tsv").split(b"\n")
            table[1] = table[1].replace(b"\t", b"\t9", 1)  # a changed value for one participant
            info = storage.put_bytes(key="datasets/ds/participants.tsv", data=b"\n".join(table))
        elif choice == 2:
            key = rng.choice(data)
            data.remove(key)
            storage.delete(key=key)
            bus.publish(topic=OBJECTS_TOPIC, message=ObjectEvent("deleted", key).to_message())
            continue
        else:
            key = rng.choice(data)
            info = storage.put_bytes(key=key, data=storage.read(key=rng.choice(data)) if rng.random() < 0.5 else b"")
        bus.publish(topic=OBJECTS_TOPIC, message=ObjectEvent("created", info.key, info.generation).to_message())


def _sqlite_worker(bucket: str, index_path: str, bus_path: str, batch: int) -> None:
    storage = local_dir.LocalDirStorage(bucket)
    index = sqlite_index.SqliteIndex(index_path)
    bus = local_bus.LocalBus(bus_path)
    drain_object_events(bus=bus, storage=storage, index=index, actor=ACTOR, batch=batch, lease_seconds=LEASE)


def drain_until_empty(bus: local_bus.LocalBus, drain: Callable[[], None], seconds: float = 120) -> None:
    """Drain what is left, including messages nacked for a later retry (a handler that met
    a busy index or an aborted transaction asks for redelivery, as in production)."""
    deadline = time.monotonic() + seconds
    while True:
        drain()
        if bus.pending(topic=OBJECTS_TOPIC) == 0 or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    dead = bus.dead_letters(topic=OBJECTS_TOPIC)
    assert bus.pending(topic=OBJECTS_TOPIC) == 0 and not dead, [error for _, _, error in dead]


def expect_equal_to_batch(storage: Storage, index: Index, fresh: Callable[[], Index]) -> None:
    batch = fresh()
    reindex.reindex_dataset("ds", storage=storage, index=batch, actor=ACTOR)
    records, metadata = snapshot(batch)
    got_records, got_metadata = snapshot(index)
    assert got_metadata == metadata
    wrong = [a["path"] for a, b in zip(got_records, records, strict=False) if a != b]  # type: ignore[index]
    assert len(got_records) == len(records) and not wrong, f"{len(wrong)} records differ, e.g. {wrong[:3]}"


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_parallel_processes_on_sqlite_equal_a_batch_index(source: Path, tmp_path: Path, seed: int) -> None:
    rng = random.Random(seed)
    storage = local_dir.LocalDirStorage(tmp_path / "bucket")
    bus = local_bus.LocalBus(tmp_path / "events.sqlite")
    keys = upload_all(storage, bus, source, rng)
    args = (str(tmp_path / "bucket"), str(tmp_path / "index.sqlite"), str(tmp_path / "events.sqlite"))
    sqlite_index.SqliteIndex(args[1]).close()  # create the schema once, before the workers race
    context = mp.get_context("fork")
    workers = [context.Process(target=_sqlite_worker, args=(*args, batch)) for batch in (1, 1, 1, 4)]
    victim = context.Process(target=_sqlite_worker, args=(*args, 32))
    for worker in [victim, *workers]:
        worker.start()
    time.sleep(0.2)
    assert victim.pid is not None
    os.kill(victim.pid, signal.SIGKILL)  # a crash between steps: its leased messages come back
    mutate(storage, bus, keys, rng)
    for worker in workers:
        worker.join(timeout=300)
        assert worker.exitcode == 0
    time.sleep(LEASE)
    drain_until_empty(bus, lambda: _sqlite_worker(*args, batch=64))  # the killed worker's messages, and any left
    index = sqlite_index.SqliteIndex(args[1])
    expect_equal_to_batch(storage, index, lambda: sqlite_index.SqliteIndex(":memory:"))


def test_parallel_clients_on_firestore_equal_a_batch_index(source: Path, tmp_path: Path, gcp: object) -> None:
    from rollerblade.adapters import firestore_index

    project = gcp.project  # type: ignore[attr-defined]
    prefix = f"c{uuid.uuid4().hex[:10]}_"
    rng = random.Random(11)
    storage = local_dir.LocalDirStorage(tmp_path / "bucket")
    bus = local_bus.LocalBus(tmp_path / "events.sqlite")
    keys = upload_all(storage, bus, source, rng)
    failures: list[BaseException] = []

    def worker(batch: int) -> None:
        try:  # one client per thread, as separate function instances would have
            index = firestore_index.FirestoreIndex(project=project, prefix=prefix, emulator=True)
            drain_object_events(bus=bus, storage=storage, index=index, actor=ACTOR, batch=batch, lease_seconds=30)
        except BaseException as e:
            failures.append(e)

    threads = [threading.Thread(target=worker, args=(batch,)) for batch in (1, 1, 1, 4)]
    for thread in threads:
        thread.start()
    mutate(storage, bus, keys, rng)
    for thread in threads:
        thread.join(timeout=600)
    drain_until_empty(bus, lambda: worker(64))  # published after the others found the queue empty
    assert not failures
    index = firestore_index.FirestoreIndex(project=project, prefix=prefix, emulator=True)
    expect_equal_to_batch(
        storage, index, lambda: firestore_index.FirestoreIndex(project=project, prefix=f"b{prefix}", emulator=True)
    )


class _PausingIndex(sqlite_index.SqliteIndex):
    """A real SQLite index whose first metadata read in ``thread`` returns only after
    ``resume`` is set: the interleaving parallel handlers hit now and then, made certain."""

    def __init__(self, path: str, thread: str, resume: threading.Event) -> None:
        super().__init__(path)
        self.thread, self.resume, self.paused = thread, resume, False

    def metadata(self, *, dataset: str, directories: object = None, under: str | None = None) -> list:  # type: ignore[override]
        result = super().metadata(dataset=dataset, directories=directories, under=under)  # type: ignore[arg-type]
        if threading.current_thread().name == self.thread and not self.paused:
            self.paused = True
            assert self.resume.wait(30)
        return result


@pytest.mark.parametrize("indexed_before", [False, True], ids=["new-data-file", "redelivered-data-file"])
def test_data_file_and_its_sidecar_at_the_same_moment(source: Path, tmp_path: Path, indexed_before: bool) -> None:
    """The data file's handler reads the metadata before the sidecar is stored, and writes
    after the sidecar's handler has refreshed: the record must still get the sidecar."""
    from rollerblade.pipeline.indexing import index_object

    rel = "sub-001/ses-1/anat/sub-001_ses-1_T1w"
    storage = local_dir.LocalDirStorage(tmp_path / "bucket")
    setup = sqlite_index.SqliteIndex(tmp_path / "index.sqlite")
    for path in sorted(source.rglob("*")):
        key = f"datasets/ds/{path.relative_to(source).as_posix()}"
        if path.is_file() and key != f"datasets/ds/{rel}.json":
            storage.put_file(key=key, source=str(path))
            if indexed_before or key != f"datasets/ds/{rel}.nii.gz":
                index_object(ObjectEvent("created", key), storage=storage, index=setup, actor=ACTOR)
    setup.close()
    sidecar = storage.put_bytes(key=f"datasets/ds/{rel}.json", data=b'{"EchoTime": 0.0042, "Own": "yes"}')
    resume = threading.Event()
    index = _PausingIndex(str(tmp_path / "index.sqlite"), "data-handler", resume)

    def handle_data() -> None:
        index_object(ObjectEvent("created", f"datasets/ds/{rel}.nii.gz"), storage=storage, index=index, actor=ACTOR)

    data = threading.Thread(target=handle_data, name="data-handler")
    data.start()
    while not index.paused:
        time.sleep(0.001)
    index_object(ObjectEvent("created", sidecar.key), storage=storage, index=index, actor=ACTOR)
    resume.set()
    data.join()
    record = index.get_record(dataset="ds", path=f"{rel}.nii.gz")
    assert record is not None and record.meta.get("Own") == "yes" and record.meta["EchoTime"] == 0.0042
