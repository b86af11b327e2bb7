"""Fixtures shared by every test folder: generated cohorts and fresh stores.

The cohorts are built once per session from real images shipped in installed packages
(``rollerblade.demo.cohort``); tests copy them when they need to damage them.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from rollerblade.demo.cohort import DEMO, FULL, write_cohort
from rollerblade.records import Actor
from rollerblade.settings import Settings
from rollerblade.stack import Stack, open_stack

ACTOR = Actor("tester")


@pytest.fixture(scope="session")
def real_cohort(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Three site datasets, 9 participants x 2 sessions, jittered real images."""
    return write_cohort(tmp_path_factory.mktemp("real-cohort"), subjects=9, modalities=DEMO, seed=7)


@pytest.fixture(scope="session")
def full_cohort(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Three site datasets with every modality (anat, func with events, dwi, fmap), tiny images."""
    return write_cohort(tmp_path_factory.mktemp("full-cohort"), subjects=12, modalities=FULL, images="tiny", seed=3)


@pytest.fixture
def copy_of(tmp_path: Path) -> Iterator[object]:
    """``copy_of(root)`` copies a dataset folder into this test's tmp dir (to damage it)."""

    def copy(root: Path) -> Path:
        target = tmp_path / "src" / root.name
        shutil.copytree(root, target, symlinks=True)
        return target

    yield copy


@pytest.fixture
def stack(tmp_path: Path) -> Iterator[Stack]:
    """A fresh embedded store (directory bucket, SQLite index, SQLite bus)."""
    s = open_stack(Settings(home=tmp_path / "home"))
    yield s
    s.close()
