"""Download a query as valid BIDS, checked by the official validator (bids-validator-deno)."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from rollerblade.abids import layout
from rollerblade.demo.cohort import SITES, write_cohort
from rollerblade.errors import AlreadyExists, InputError, NotFound
from rollerblade.pipeline import download
from rollerblade.stack import Stack
from tests.conftest import ACTOR
from tests.integration.conftest import import_into


def validate(root: Path) -> dict[str, object]:
    """Run the official validator; returns its JSON report."""
    validator = shutil.which("bids-validator-deno")
    assert validator, "bids-validator-deno is a test dependency (pip install bids-validator-deno)"
    result = subprocess.run([validator, "--format", "json", str(root)], capture_output=True, text=True, timeout=300)
    report: dict[str, object] = json.loads(result.stdout)
    return report


def errors_of(report: dict[str, object]) -> list[str]:
    issues = report["issues"]["issues"]  # type: ignore[index]
    return sorted({f"{i['code']}: {i.get('location', '')}" for i in issues if i["severity"] == "error"})


@pytest.fixture
def imported(stack: Stack, real_cohort: dict[str, Path]) -> Stack:
    for name, root in real_cohort.items():
        import_into(stack, root, name)
    return stack


def test_sources_are_valid(real_cohort: dict[str, Path]) -> None:
    assert errors_of(validate(real_cohort["site-a"])) == []


@pytest.mark.parametrize(
    "query",
    [
        "suffix=T1w AND meta.MagneticFieldStrength=3",
        "task=rest AND participant.sex=F",
        "datatype=dwi OR (sub IN (001, 002) AND ses=2)",
    ],
)
def test_downloads_are_valid_bids(imported: Stack, tmp_path: Path, query: str) -> None:
    report = download.download_query(
        query, tmp_path / "out", storage=imported.storage, index=imported.index, actor=ACTOR
    )
    assert report.datasets and report.records > 0
    for dataset in report.datasets:
        root = tmp_path / "out" / dataset
        assert errors_of(validate(root)) == []
        assert (root / "dataset_description.json").is_file() and (root / "README.md").is_file()


def test_download_contents(imported: Stack, tmp_path: Path, real_cohort: dict[str, Path]) -> None:
    download.download_query(
        "task=rest AND sub=001", tmp_path, storage=imported.storage, index=imported.index, actor=ACTOR
    )
    root = tmp_path / "site-a"
    files = sorted(p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file())
    assert files == [
        "README.md",
        "dataset_description.json",
        "participants.json",
        "participants.tsv",
        "sub-001/ses-1/func/sub-001_ses-1_task-rest_run-01_bold.json",
        "sub-001/ses-1/func/sub-001_ses-1_task-rest_run-01_bold.nii.gz",
        "sub-001/ses-2/func/sub-001_ses-2_task-rest_run-01_bold.json",
        "sub-001/ses-2/func/sub-001_ses-2_task-rest_run-01_bold.nii.gz",
        "sub-001/sub-001_sessions.tsv",
        "task-rest_bold.json",
    ]
    assert (root / "participants.tsv").read_text().splitlines()[1:] == [
        line
        for line in (real_cohort["site-a"] / "participants.tsv").read_text().splitlines()
        if line.startswith("sub-001\t")
    ]
    source = real_cohort["site-a"] / "sub-001/ses-2/func/sub-001_ses-2_task-rest_run-01_bold.nii.gz"
    assert (root / "sub-001/ses-2/func/sub-001_ses-2_task-rest_run-01_bold.nii.gz").read_bytes() == source.read_bytes()


def test_download_never_overwrites(imported: Stack, tmp_path: Path) -> None:
    (tmp_path / "site-a").mkdir()
    (tmp_path / "site-a" / "mine.txt").write_text("keep me")
    with pytest.raises(AlreadyExists, match="download into an empty or new destination"):
        download.download_query("dataset=site-a", tmp_path, storage=imported.storage, index=imported.index, actor=ACTOR)
    assert (tmp_path / "site-a" / "mine.txt").read_text() == "keep me"


@pytest.fixture
def tiny_site(stack: Stack, tmp_path: Path) -> Stack:
    """One small dataset ``site-a`` (sub-001, sub-002; 2 sessions) whose participants.tsv and
    sessions.tsv do not start with their id column."""
    root = write_cohort(tmp_path / "tiny", subjects=2, images="tiny", sites=SITES[:1])["site-a"]
    (root / "participants.tsv").write_text("age\tparticipant_id\tsex\n61\tsub-001\tF\n40\tsub-002\tM\n")
    for sub in ("sub-001", "sub-002"):
        (root / sub / f"{sub}_sessions.tsv").write_text(
            "age\tsession_id\tvisit\n61\tses-1\tbaseline\n63\tses-2\tfollowup\n"
        )
    import_into(stack, root, "site-a")
    return stack


def test_tables_keep_their_rows_whatever_the_column_order(tiny_site: Stack, tmp_path: Path) -> None:
    download.download_query(
        "sub=001 AND ses=2", tmp_path / "out", storage=tiny_site.storage, index=tiny_site.index, actor=ACTOR
    )
    root = tmp_path / "out" / "site-a"
    assert (root / "participants.tsv").read_text() == "age\tparticipant_id\tsex\n61\tsub-001\tF\n"
    assert (root / "sub-001" / "sub-001_sessions.tsv").read_text() == "age\tsession_id\tvisit\n63\tses-2\tfollowup\n"


def test_downloaded_tables_hold_the_rows_the_index_used(stack: Stack, tmp_path: Path) -> None:
    """A non-UTF-8, a ragged and a repeated row were left out at import: the download's
    table leaves them out too, instead of failing or copying rows no query could see."""
    root = write_cohort(tmp_path / "tiny", subjects=3, images="tiny", sites=SITES[:1])["site-a"]
    (root / "participants.tsv").write_bytes(
        b"participant_id\tage\tsex\n"
        b"sub-001\t61\tF\n"
        b"sub-002\t40\tcaf\xe9\n"  # not UTF-8
        b"sub-003\t52\tM\textra\n"  # ragged
        b"sub-001\t99\tM\n"  # repeated
    )
    import_into(stack, root, "site-a")
    download.download_query("", tmp_path / "out", storage=stack.storage, index=stack.index, actor=ACTOR)
    table = (tmp_path / "out" / "site-a" / "participants.tsv").read_text()
    assert table == "participant_id\tage\tsex\nsub-001\t61\tF\n"


def _debris(destination: Path) -> list[str]:
    return sorted(p.name for p in destination.iterdir() if ".partial" in p.name)


@pytest.mark.parametrize("kind", ["symlink to an empty folder", "dangling symlink", "file"])
def test_download_refuses_a_link_or_file_in_the_way(tiny_site: Stack, tmp_path: Path, kind: str) -> None:
    destination = tmp_path / "out"
    destination.mkdir()
    in_the_way = destination / "site-a"
    if kind == "file":
        in_the_way.write_text("mine")
    else:
        elsewhere = tmp_path / "elsewhere"
        if kind == "symlink to an empty folder":
            elsewhere.mkdir()
        in_the_way.symlink_to(elsewhere)
    expected = "is a file, not a folder" if kind == "file" else "is a symbolic link"
    with pytest.raises(InputError, match=re.escape(f"{in_the_way} {expected}")) as raised:
        download.download_query("sub=001", destination, storage=tiny_site.storage, index=tiny_site.index, actor=ACTOR)
    assert "in the way of the download" in str(raised.value) and "another destination" in str(raised.value)
    if kind == "file":
        assert in_the_way.read_text() == "mine"
    else:
        assert in_the_way.is_symlink() and in_the_way.readlink() == tmp_path / "elsewhere"
    assert _debris(destination) == []


def test_cli_download_reports_a_file_in_the_way_without_a_traceback(tiny_site: Stack, tmp_path: Path) -> None:
    destination = tmp_path / "out"
    destination.mkdir()
    (destination / "site-a").write_text("mine")
    result = subprocess.run(
        [sys.executable, "-m", "rollerblade.cli.main", "--home", str(tiny_site.settings.home)]
        + ["download", "sub=001", str(destination)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert result.stderr.startswith(f"Error: {destination / 'site-a'} is a file, not a folder")
    assert (destination / "site-a").read_text() == "mine"


def test_download_keeps_a_users_partial_folder(tiny_site: Stack, tmp_path: Path) -> None:
    destination = tmp_path / "out"
    (destination / ".site-a.partial").mkdir(parents=True)
    (destination / ".site-a.partial" / "notes.txt").write_text("keep me")
    report = download.download_query(
        "sub=001", destination, storage=tiny_site.storage, index=tiny_site.index, actor=ACTOR
    )
    assert report.datasets["site-a"] > 0 and (destination / "site-a" / "dataset_description.json").is_file()
    assert (destination / ".site-a.partial" / "notes.txt").read_text() == "keep me"
    assert _debris(destination) == [".site-a.partial"]


def test_failed_download_removes_only_its_own_temporary_folder(tiny_site: Stack, tmp_path: Path) -> None:
    destination = tmp_path / "out"
    (destination / ".site-a.partial").mkdir(parents=True)
    (destination / ".site-a.partial" / "notes.txt").write_text("keep me")
    tiny_site.storage.delete(key=layout.dataset_key("site-a", "sub-001/ses-2/anat/sub-001_ses-2_T1w.nii.gz"))
    with pytest.raises(NotFound):
        download.download_query("sub=001", destination, storage=tiny_site.storage, index=tiny_site.index, actor=ACTOR)
    assert (destination / ".site-a.partial" / "notes.txt").read_text() == "keep me"
    assert sorted(p.name for p in destination.iterdir()) == [".site-a.partial"]
