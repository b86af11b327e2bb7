"""The ``rollerblade`` command end to end: results on stdout, diagnostics on stderr,
user errors as one line without a traceback."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from rollerblade.cli.main import cli
from rollerblade.records import default_actor


@pytest.fixture
def home(tmp_path: Path) -> Path:
    return tmp_path / "home"


def run(home: Path, *args: str) -> Result:
    return CliRunner().invoke(cli, ["--home", str(home), *args], catch_exceptions=False)


@pytest.fixture
def imported(home: Path, real_cohort: dict[str, Path]) -> Path:
    for name in ("site-a", "site-b"):
        result = run(home, "import", str(real_cohort[name]), "--dataset", name)
        assert result.exit_code == 0, result.output
    return home


def test_init_and_import(home: Path, real_cohort: dict[str, Path]) -> None:
    assert run(home, "init").exit_code == 0
    assert (home / "index.sqlite").is_file() and (home / "bucket").is_dir()
    result = run(home, "import", str(real_cohort["site-c"]), "--dataset", "site-c")
    assert result.exit_code == 0
    assert (
        result.stdout.startswith("imported ")
        and "into dataset 'site-c': 12 records, 0 with errors, 0 with warnings, 0 skipped" in result.stdout
    )


def test_datasets(imported: Path) -> None:
    lines = run(imported, "datasets").stdout.splitlines()
    assert [line.split("\t")[0] for line in lines] == ["site-a", "site-b"]
    assert f"owner {default_actor()}" in lines[0]
    doc = json.loads(run(imported, "datasets", "--json").stdout.splitlines()[0])
    assert doc["name"] == "site-a" and doc["records"] == 30 and doc["errors"] == 0


def test_query_text_count_json(imported: Path) -> None:
    text = run(imported, "query", "suffix=T1w AND dataset=site-b").stdout.splitlines()
    assert text == sorted(text) and len(text) == 6 and all(line.startswith("site-b/sub-") for line in text)
    assert run(imported, "query", "suffix=T1w", "--count").stdout == "12\n"
    lines = run(imported, "query", "task=rest AND sub=001", "--json").stdout.splitlines()
    assert len(lines) == 2
    doc = json.loads(lines[0])
    assert set(doc) >= {"dataset", "path", "entities", "meta", "participant", "image", "file", "error"}
    assert doc["path"] == "sub-001/ses-1/func/sub-001_ses-1_task-rest_run-01_bold.nii.gz"
    assert doc["entities"] == {
        "sub": "001",
        "ses": "1",
        "task": "rest",
        "run": "01",
        "datatype": "func",
        "suffix": "bold",
        "extension": ".nii.gz",
    }
    assert doc["meta"]["RepetitionTime"] == 2.0 and doc["image"]["nt"] == 2 and doc["error"] is None
    assert len(run(imported, "query", "--limit", "3").stdout.splitlines()) == 3


def test_show(imported: Path) -> None:
    result = run(imported, "show", "site-a/sub-001/ses-1/anat/sub-001_ses-1_T1w.nii.gz")
    doc = json.loads(result.stdout)
    assert doc["meta"]["MagneticFieldStrength"] == 3.0 and doc["participant_columns"]["age"]["Units"] == "year"


def test_reindex_gives_the_same_answers(imported: Path) -> None:
    before = run(imported, "query", "--json").stdout
    result = run(imported, "reindex", "--dataset", "site-a")
    assert result.exit_code == 0 and result.stdout.startswith("site-a: 30 records")
    assert run(imported, "reindex").stdout.count("records") == 2
    assert run(imported, "query", "--json").stdout == before


def test_download(imported: Path, tmp_path: Path) -> None:
    result = run(imported, "download", "datatype=anat AND participant.sex=F", str(tmp_path / "out"))
    assert result.exit_code == 0
    assert all(
        (tmp_path / "out" / line.split("\t")[0].split("/")[-1] / "dataset_description.json").is_file()
        for line in result.stdout.splitlines()
    )
    empty = run(imported, "download", "suffix=T2w", str(tmp_path / "none"))
    assert empty.exit_code == 0 and "selected no records" in empty.stderr


def rollerblade(home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """The installed console script, as a user runs it."""
    return subprocess.run(
        [sys.executable, "-m", "rollerblade.cli.main", "--home", str(home), *args],
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("query", "sufix=T1w"), "unknown field 'sufix'"),
        (("query", "suffix=T1w AND"), "expected a field name"),
        (("query", "meta.RepetitionTim=2"), "did you mean: meta.RepetitionTime"),
        (("show", "site-a/nothing.nii"), "record not found: site-a/nothing.nii"),
        (("reindex", "--dataset", "nope"), "dataset not found: nope"),
    ],
)
def test_user_errors_are_one_clear_message(imported: Path, args: tuple[str, ...], message: str) -> None:
    result = rollerblade(imported, *args)
    assert result.returncode == 1 and result.stdout == ""
    assert message in result.stderr and "Traceback" not in result.stderr
    assert result.stderr.startswith("Error: ")


def test_import_errors(imported: Path, real_cohort: dict[str, Path]) -> None:
    again = rollerblade(imported, "import", str(real_cohort["site-c"]), "--dataset", "site-a")
    assert (
        again.returncode == 1 and "dataset already exists: site-a" in again.stderr and "Traceback" not in again.stderr
    )
    missing = rollerblade(imported, "import", "/no/such/folder", "--dataset", "x")
    assert missing.returncode == 2 and "does not exist" in missing.stderr


def test_usage_errors_name_both_flags(imported: Path) -> None:
    result = rollerblade(imported, "query", "suffix=T1w", "--count", "--json")
    assert result.returncode == 2 and "--count and --json cannot be combined" in result.stderr


def test_bad_setting(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "rollerblade.cli.main", "datasets"],
        capture_output=True,
        text=True,
        env={"ROLLERBLADE_WORKER": "2", "HOME": str(tmp_path), "PATH": "/usr/bin:/bin"},
    )
    assert (
        result.returncode == 1
        and "unknown setting ROLLERBLADE_WORKER (did you mean ROLLERBLADE_WORKERS?)" in result.stderr
    )


def test_queries_answer_while_a_writer_holds_the_index(imported: Path) -> None:
    """A long write (an import, a reindex) must not stop anyone from querying."""
    import sqlite3

    writer = sqlite3.connect(imported / "index.sqlite", isolation_level=None)
    writer.execute("BEGIN IMMEDIATE")
    writer.execute("DELETE FROM records")  # uncommitted: readers still see every record
    try:
        for args in (("query", "suffix=T1w", "--count"), ("datasets",), ("query", "sub=001", "--json")):
            result = subprocess.run(
                [sys.executable, "-m", "rollerblade.cli.main", "--home", str(imported), *args],
                capture_output=True,
                text=True,
                timeout=60,
            )
            assert result.returncode == 0 and "locked" not in result.stderr, result.stderr
            assert result.stdout.strip() and result.stdout.strip() != "0"
    finally:
        writer.execute("ROLLBACK")
        writer.close()


def test_delete_asks_then_removes_files_derivatives_and_records(imported: Path, real_cohort: dict[str, Path]) -> None:
    bucket = imported / "bucket"
    derivative = bucket / "derivatives" / "brain-mask" / "site-a" / "sub-001" / "anat" / "x_mask.nii.gz"
    derivative.parent.mkdir(parents=True)
    derivative.write_bytes(b"")
    refused = run(imported, "delete", "site-a")  # no terminal, no --yes: nothing happens
    assert refused.exit_code == 2 and "needs confirmation" in refused.output
    assert run(imported, "query", "dataset=site-a", "--count").output.strip() != "0"
    files = sum(1 for p in (bucket / "datasets" / "site-a").rglob("*") if p.is_file()) + 1
    result = run(imported, "delete", "site-a", "--yes")
    assert result.exit_code == 0 and f"deleted dataset 'site-a': {files} files" in result.output
    assert not (bucket / "datasets" / "site-a").exists() or not any((bucket / "datasets" / "site-a").rglob("*.*"))
    assert not derivative.exists()
    assert run(imported, "query", "dataset=site-a", "--count").output.strip() == "0"
    assert "site-a" not in run(imported, "datasets").output and "site-b" in run(imported, "datasets").output
    assert run(imported, "delete", "site-a", "--yes").output.startswith("Error: dataset not found: site-a")
    again = run(imported, "import", str(real_cohort["site-a"]), "--dataset", "site-a")  # the name is free again
    assert again.exit_code == 0, again.output
