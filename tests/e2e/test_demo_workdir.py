"""``rollerblade demo`` deletes only what it made: WORKDIR/cohort and WORKDIR/download are
emptied only when they carry the demo's ``.rollerblade-demo`` marker (or are empty)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from rollerblade.demo import run as demo_run
from rollerblade.errors import InputError


def user_files(folder: Path) -> dict[str, str]:
    return {p.relative_to(folder).as_posix(): p.read_text() for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.mark.parametrize("name", ["cohort", "download"])
def test_a_users_folder_is_refused_and_kept(tmp_path: Path, name: str) -> None:
    workdir = tmp_path / "work"
    (workdir / name / "results").mkdir(parents=True)
    (workdir / name / "results" / "thesis.txt").write_text("three years of work")
    other = "download" if name == "cohort" else "cohort"
    (workdir / other).mkdir()
    (workdir / other / demo_run.MARKER).write_text("")
    (workdir / other / "from-last-demo.txt").write_text("old demo output")
    with pytest.raises(InputError, match=re.escape(f"{workdir / name} is not empty and was not made by the demo")):
        demo_run.prepare_workdir(workdir)
    assert user_files(workdir / name) == {"results/thesis.txt": "three years of work"}
    # both folders are checked before either is emptied
    assert (workdir / other / "from-last-demo.txt").read_text() == "old demo output"


@pytest.mark.parametrize("kind", ["file", "symlink"])
def test_a_file_or_link_in_the_way_is_refused(tmp_path: Path, kind: str) -> None:
    workdir = tmp_path / "work"
    workdir.mkdir()
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "mine.txt").write_text("mine")
    if kind == "file":
        (workdir / "cohort").write_text("mine")
    else:
        (workdir / "cohort").symlink_to(elsewhere)
    expected = "is a file" if kind == "file" else "is a symbolic link"
    with pytest.raises(InputError, match=re.escape(f"{workdir / 'cohort'} {expected}")):
        demo_run.prepare_workdir(workdir)
    assert user_files(elsewhere) == {"mine.txt": "mine"}
    assert not (workdir / "download").exists()


def test_marked_and_empty_folders_are_reused(tmp_path: Path) -> None:
    workdir = tmp_path / "work"
    (workdir / "download").mkdir(parents=True)  # empty: accepted
    cohort, download = demo_run.prepare_workdir(workdir)
    assert (cohort, download) == (workdir / "cohort", workdir / "download")
    for folder in (cohort, download):
        assert [p.name for p in folder.iterdir()] == [demo_run.MARKER]
    (cohort / "site-a" / "sub-001").mkdir(parents=True)  # what a demo run leaves behind
    (cohort / "site-a" / "sub-001" / "scan.nii.gz").write_bytes(b"old")
    (tmp_path / "keep.txt").write_text("mine")
    (download / "site-a").symlink_to(tmp_path)  # a link inside a marked folder is removed, not followed
    demo_run.prepare_workdir(workdir)
    for folder in (cohort, download):
        assert [p.name for p in folder.iterdir()] == [demo_run.MARKER]
    assert (tmp_path / "keep.txt").read_text() == "mine"


def test_cli_demo_stops_before_touching_a_users_folder(tmp_path: Path) -> None:
    workdir = tmp_path / "work"
    (workdir / "cohort").mkdir(parents=True)
    (workdir / "cohort" / "notes.txt").write_text("mine")
    result = subprocess.run(
        [sys.executable, "-m", "rollerblade.cli.main", "--home", str(tmp_path / "home")]
        + ["demo", "--subjects", "3", "--no-analyses", "--workdir", str(workdir)],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 1 and "Traceback" not in result.stderr, result.stderr
    assert result.stderr.startswith(f"Error: {workdir / 'cohort'} is not empty and was not made by the demo")
    assert "1. Building" not in result.stdout
    assert user_files(workdir / "cohort") == {"notes.txt": "mine"}
    assert not (workdir / "download").exists()
