"""Contract fixtures: one parameter per adapter. A new adapter adds a parameter here and
must pass every contract test unchanged."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from rollerblade.adapters import local_bus, local_dir, sqlite_index
from rollerblade.ports import EventBus, Index, Storage


@pytest.fixture(params=["local_dir"])
def storage(request: pytest.FixtureRequest, tmp_path: Path) -> Storage:
    if request.param == "local_dir":
        return local_dir.LocalDirStorage(tmp_path / "bucket")
    raise AssertionError(request.param)


@pytest.fixture(params=["sqlite-file", "sqlite-memory"])
def index(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Index]:
    path = tmp_path / "index.sqlite" if request.param == "sqlite-file" else ":memory:"
    idx = sqlite_index.SqliteIndex(path)
    yield idx
    idx.close()


@pytest.fixture
def bus_factory(tmp_path: Path) -> Iterator[object]:
    """``bus_factory()`` opens the same durable bus again (to test durability)."""
    opened: list[local_bus.LocalBus] = []

    def make(**kwargs: object) -> EventBus:
        bus = local_bus.LocalBus(tmp_path / "events.sqlite", **kwargs)  # type: ignore[arg-type]
        opened.append(bus)
        return bus

    yield make
    for bus in opened:
        bus.close()
