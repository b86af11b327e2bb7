"""Download a query as valid BIDS, checked by the official validator (bids-validator-deno)."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

from rollerblade.errors import AlreadyExists
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
