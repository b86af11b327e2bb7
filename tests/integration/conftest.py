"""Integration fixtures: the handlers over real adapters and real files."""

from __future__ import annotations

from pathlib import Path

from rollerblade.pipeline import importing
from rollerblade.pipeline.importing import ImportReport
from rollerblade.stack import Stack
from tests.conftest import ACTOR


def import_into(stack: Stack, source: Path, name: str) -> ImportReport:
    return importing.import_dataset(
        source, dataset=name, storage=stack.storage, index=stack.index, bus=stack.bus, actor=ACTOR
    )
