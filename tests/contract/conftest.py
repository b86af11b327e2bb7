"""Contract fixtures: one parameter per adapter. A new adapter adds a parameter here and
must pass every contract test unchanged."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from rollerblade.adapters import local_bus, local_dir, sqlite_index
from rollerblade.ports import EventBus, Index, Storage


@pytest.fixture(params=["local_dir", "fake-gcs"])
def storage(request: pytest.FixtureRequest, tmp_path: Path) -> Storage:
    if request.param == "local_dir":
        return local_dir.LocalDirStorage(tmp_path / "bucket")
    from rollerblade.adapters import gcs

    gcp = request.getfixturevalue("gcp")
    bucket = gcs.GcsStorage(bucket=f"b-{uuid.uuid4().hex[:12]}", project=gcp.project, emulator_host=gcp.storage_url)
    bucket.ensure_bucket()
    return bucket


@pytest.fixture(params=["sqlite-file", "sqlite-memory", "firestore"])
def index(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Index]:
    if request.param == "firestore":
        from rollerblade.adapters import firestore_index

        gcp = request.getfixturevalue("gcp")
        yield firestore_index.FirestoreIndex(project=gcp.project, prefix=f"t{uuid.uuid4().hex[:10]}_", emulator=True)
        return
    path = tmp_path / "index.sqlite" if request.param == "sqlite-file" else ":memory:"
    idx = sqlite_index.SqliteIndex(path)
    yield idx
    idx.close()


@pytest.fixture(params=["local", "pubsub"])
def bus_factory(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[object]:
    """``bus_factory()`` opens the same durable bus again (to test durability)."""
    opened: list[EventBus] = []
    prefix = f"t{uuid.uuid4().hex[:10]}-"

    def make(**kwargs: object) -> EventBus:
        if request.param == "pubsub":
            from rollerblade.adapters import pubsub_bus

            gcp = request.getfixturevalue("gcp")
            bus: EventBus = pubsub_bus.PubSubBus(project=gcp.project, prefix=prefix, **kwargs)  # type: ignore[arg-type]
        else:
            bus = local_bus.LocalBus(tmp_path / "events.sqlite", **kwargs)  # type: ignore[arg-type]
        opened.append(bus)
        return bus

    yield make
    for bus in opened:
        bus.close()  # type: ignore[attr-defined]
