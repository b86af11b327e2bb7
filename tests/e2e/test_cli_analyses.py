"""``rollerblade analysis register/list/show``, ``run``, ``jobs`` and ``logs`` end to end."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def rb(home: Path, *args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "rollerblade.cli.main", "--home", str(home), *args],
        capture_output=True,
        text=True,
        timeout=timeout,
    )


@pytest.fixture
def home(tmp_path: Path, real_cohort: dict[str, Path], docker_engine: None) -> Path:
    home = tmp_path / "home"
    assert rb(home, "import", str(real_cohort["site-c"]), "--dataset", "site-c").returncode == 0
    return home


def test_register_run_jobs_logs(home: Path) -> None:
    registered = rb(home, "analysis", "register", str(ROOT / "analyses" / "qc-snapshot"))
    assert registered.returncode == 0 and registered.stdout.startswith("registered qc-snapshot 1.0.0  sha256:")
    listed = rb(home, "analysis", "list").stdout
    assert listed.startswith("qc-snapshot\t1.0.0\tscan\tsha256:")
    shown = json.loads(rb(home, "analysis", "show", "qc-snapshot").stdout)
    pattern = "sub-{sub}[_ses-{ses}][_task-{task}][_acq-{acq}][_run-{run}][_desc-{desc}]_{suffix}.png"
    assert shown["spec"]["outputs"] == [pattern]
    dry = rb(home, "run", "qc-snapshot", "--query", "suffix=T1w", "--dry-run")
    assert dry.returncode == 0 and dry.stdout.count("run  ") == 6
    assert "6 jobs planned, 0 already done (skipped), 6 to run" in dry.stderr
    done = rb(home, "run", "qc-snapshot", "--query", "suffix=T1w AND ses=1")
    assert done.returncode == 0
    assert done.stdout.strip() == "qc-snapshot: 3 succeeded, 0 failed, 0 skipped (already done)"
    again = rb(home, "run", "qc-snapshot", "--query", "suffix=T1w")
    assert "3 succeeded, 0 failed, 3 skipped (already done)" in again.stdout
    jobs = rb(home, "jobs").stdout.splitlines()
    assert len(jobs) == 6 and all("\tsucceeded\tqc-snapshot\tsite-c/" in line for line in jobs)
    logs = rb(home, "logs", jobs[0].split("\t")[0])
    assert logs.returncode == 0 and "montage" in logs.stdout
    assert rb(home, "query", "analysis=qc-snapshot AND extension=.png", "--count").stdout == "6\n"


def test_run_with_the_process_executor(home: Path) -> None:
    assert rb(home, "analysis", "register", str(ROOT / "analyses" / "qc-snapshot")).returncode == 0
    result = rb(home, "run", "qc-snapshot", "--query", "suffix=T1w AND sub=003", "--executor", "process")
    assert result.returncode == 0 and "2 succeeded" in result.stdout


def test_failures_are_reported_and_exit_non_zero(home: Path, tmp_path: Path) -> None:
    folder = tmp_path / "broken"
    folder.mkdir()
    (folder / "Dockerfile").write_text("FROM rollerblade/base:py311\n")
    (folder / "analysis.yaml").write_text(
        "name: broken\nversion: '1'\nimage: {build: .}\ncommand: [python3, -c, 'import sys; sys.exit(5)']\n"
        "input: suffix=T1w\noutputs: ['sub-{sub}[_ses-{ses}]_x_T1w.nii.gz']\n"
    )
    assert rb(home, "analysis", "register", str(folder)).returncode == 0
    result = rb(home, "run", "broken", "--query", "sub=003 AND ses=1")
    assert result.returncode == 1 and "0 succeeded, 1 failed" in result.stdout
    assert "exited with code 5" in result.stderr and "rollerblade logs" in result.stderr
    failed = rb(home, "jobs", "--failed").stdout.splitlines()
    assert len(failed) == 1 and "exited with code 5" in failed[0]


def test_user_errors(home: Path, tmp_path: Path) -> None:
    missing = rb(home, "run", "nope")
    assert missing.returncode == 1 and "analysis not found: nope (registered: none registered yet)" in missing.stderr
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "analysis.yaml").write_text("name: bad\nversoin: 1\n")
    bad = rb(home, "analysis", "register", str(tmp_path / "bad"))
    assert bad.returncode == 1 and "analysis.yaml:2: versoin: unknown key (did you mean 'version'?)" in bad.stderr
    assert "Traceback" not in bad.stderr
    assert "job not found: zzz" in rb(home, "logs", "zzz").stderr
