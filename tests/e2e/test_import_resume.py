"""``rollerblade import`` killed half way and run again; two imports racing for one name."""

from __future__ import annotations

import os
import pty
import select
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from rollerblade.adapters import sqlite_index
from rollerblade.demo.cohort import FULL, SITES, make_participants, write_dataset


@pytest.fixture(scope="module")
def big_source(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """About 2,000 files: long enough to kill an import in the middle."""
    root = tmp_path_factory.mktemp("resume") / "study"
    return write_dataset(
        root, SITES[2], make_participants(40, np.random.default_rng(2)), modalities=FULL, images="tiny"
    )


LEASE = 6.0  # seconds an import's claim on its name lasts unless renewed


def rollerblade(home: Path, *args: str, stderr: int = subprocess.PIPE) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "rollerblade.cli.main", "--home", str(home), *args],
        stdout=subprocess.PIPE,
        stderr=stderr,
        text=True,
        env={**os.environ, "ROLLERBLADE_IMPORT_LEASE": str(LEASE)},
    )


def finish(proc: subprocess.Popen[str]) -> tuple[int, str, str]:
    out, err = proc.communicate(timeout=300)
    return proc.returncode, out, err


def snapshot(home: Path) -> list[object]:
    index = sqlite_index.SqliteIndex(home / "index.sqlite")
    try:
        return [{**r.to_doc(), "file": {**r.file, "generation": 0}} for r in index.records(dataset="study")]
    finally:
        index.close()


def test_a_killed_import_is_finished_by_running_it_again(big_source: Path, tmp_path: Path) -> None:
    home = tmp_path / "home"
    files = sum(1 for p in big_source.rglob("*") if p.is_file())
    # Its stderr is a terminal, so it draws a progress bar; the bar first appears after 200
    # of the ~1,700 files are stored, and the kill follows at once. (Counting the stored
    # files from here instead was a race a busy machine could lose: the upload outran it.)
    terminal, its_side = pty.openpty()
    proc = rollerblade(home, "import", str(big_source), "--dataset", "study", stderr=its_side)
    os.close(its_side)
    shown = b""
    deadline = time.monotonic() + 120
    while b"uploading" not in shown and time.monotonic() < deadline:
        if select.select([terminal], [], [], 1.0)[0]:
            shown += os.read(terminal, 4096)
    os.kill(proc.pid, signal.SIGKILL)
    proc.communicate()  # reap it and close its pipes
    os.close(terminal)
    assert b"uploading" in shown, shown
    stored = home / "bucket" / "datasets" / "study"
    left = sum(1 for p in stored.rglob("*") if p.is_file())
    assert 0 < left < files  # killed in the middle of the upload

    code, out, _ = finish(rollerblade(home, "datasets"))
    assert code == 0 and "import unfinished" in out
    code, _, err = finish(rollerblade(home, "import", str(big_source), "--dataset", "study"))
    assert code == 1 and "is running; if it was killed, run this again in" in err  # its claim has not lapsed yet
    other = tmp_path / "other"
    other.mkdir()
    (other / "dataset_description.json").write_text('{"Name": "other", "BIDSVersion": "1.10.0"}')
    code, _, err = finish(rollerblade(home, "import", str(other), "--dataset", "study"))
    assert code == 1 and f"an unfinished import from {big_source} holds it" in err
    code, _, err = finish(rollerblade(home, "reindex", "--dataset", "study"))
    assert code == 0 and "its import is unfinished; the index holds only what was stored so far" in err
    time.sleep(LEASE)

    code, out, err = finish(rollerblade(home, "import", str(big_source), "--dataset", "study"))
    assert code == 0, err
    assert "finished the interrupted import of 'study'" in err and f"imported {files} files" in out
    assert "import unfinished" not in finish(rollerblade(home, "datasets"))[1]
    fresh = tmp_path / "fresh"
    assert finish(rollerblade(fresh, "import", str(big_source), "--dataset", "study"))[0] == 0
    assert snapshot(home) == snapshot(fresh)  # the same index as an import never interrupted


def test_two_imports_of_one_name_at_once(big_source: Path, tmp_path: Path) -> None:
    home = tmp_path / "home"
    assert finish(rollerblade(home, "init"))[0] == 0
    racers = [rollerblade(home, "import", str(big_source), "--dataset", "study") for _ in range(2)]
    results = [finish(proc) for proc in racers]
    assert sorted(code for code, _, _ in results) == [0, 1]
    loser = next(err for code, _, err in results if code == 1)
    assert "dataset already exists: study" in loser
