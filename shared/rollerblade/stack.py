"""The composition root: build the adapters that ``Settings`` select.

Entry points (CLI, functions, tests) call :func:`open_stack` once and pass the ports
down. This is the only place that knows which adapter implements which port.
"""

from __future__ import annotations

import dataclasses

from rollerblade.adapters import local_bus, local_dir, sqlite_index
from rollerblade.ports import EventBus, Index, Storage
from rollerblade.settings import Settings


@dataclasses.dataclass
class Stack:
    settings: Settings
    storage: Storage
    index: Index
    bus: EventBus

    def close(self) -> None:
        for port in (self.index, self.bus):
            close = getattr(port, "close", None)
            if close is not None:
                close()


def open_stack(settings: Settings) -> Stack:
    """Open (creating if needed) the store that ``settings`` point at."""
    settings.home.mkdir(parents=True, exist_ok=True)
    return Stack(
        settings=settings,
        storage=local_dir.LocalDirStorage(settings.bucket_root),
        index=sqlite_index.SqliteIndex(settings.index_path),
        bus=local_bus.LocalBus(settings.bus_path),
    )
