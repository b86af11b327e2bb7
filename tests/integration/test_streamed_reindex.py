"""``reindex`` builds records in forked worker processes and writes them as they come, in
one transaction: the result equals a build in one process, and the index's readers (the
API's thread shares the index object) see the old records until the commit."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from rollerblade.adapters import local_dir, sqlite_index
from rollerblade.pipeline import reindex
from rollerblade.query import ast
from tests.conftest import ACTOR


@pytest.fixture
def bucket(tmp_path: Path, full_cohort: dict[str, Path]) -> Path:
    root = tmp_path / "bucket"
    shutil.copytree(full_cohort["site-a"], root / "datasets" / "site-a")
    return root


def _rows(index: sqlite_index.SqliteIndex) -> list[tuple[str, str]]:
    return [(r.path, repr(r)) for r in index.records(dataset="site-a")]


def test_forked_streamed_build_equals_one_process(
    bucket: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    storage = local_dir.LocalDirStorage(bucket)
    alone = sqlite_index.SqliteIndex(tmp_path / "alone.sqlite")
    report_alone = reindex.reindex_dataset("site-a", storage=storage, index=alone, actor=ACTOR, workers=1)

    # small chunks and threshold: several tasks per worker, and the window refilled
    monkeypatch.setattr(reindex, "PARALLEL_THRESHOLD", 10)
    monkeypatch.setattr(reindex, "CHUNK", 7)
    monkeypatch.setattr(reindex, "WINDOW", 1)
    monkeypatch.setattr("os.cpu_count", lambda: 2)
    index = sqlite_index.SqliteIndex(tmp_path / "forked.sqlite")
    index.put_records(records=[r for r in alone.records(dataset="site-a")][:3])  # an old state: 3 records
    seen: list[tuple[int, int]] = []

    def progress(done: int, total: int) -> None:  # called while the stream is written
        seen.append((done, index.count(node=ast.All())))

    monkeypatch.setattr(reindex, "PROGRESS_EVERY", 5)
    report = reindex.reindex_dataset("site-a", storage=storage, index=index, actor=ACTOR, workers=2, progress=progress)

    assert report.records == report_alone.records > 50  # 12 subjects x 2 sessions, every modality
    assert report.errors == report_alone.errors
    assert _rows(index) == _rows(alone)
    assert len(seen) >= 5 and seen[-1][0] == report.records
    assert {count for _, count in seen} == {3}, "a reader saw the replace before its commit"
    assert index.count(node=ast.All()) == report.records
