"""The rules commands as a user types them: apply (and its errors), list, show, explain;
``rerun`` (and the rerun message) with and without --force; job keys from what runs."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from rollerblade.adapters.process_exec import folder_digest
from rollerblade.settings import Settings
from rollerblade.stack import open_stack

ROOT = Path(__file__).resolve().parents[2]
ENV = {**os.environ, "ROLLERBLADE_EXECUTOR": "process", "PYTHONPATH": str(ROOT / "shared")}


def rb(home: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        [sys.executable, "-m", "rollerblade.cli.main", "--home", str(home), *args],
        env=ENV,
        capture_output=True,
        text=True,
        timeout=300,
    )
    if check:
        assert result.returncode == 0, result.stderr
    return result


@pytest.fixture(scope="module")
def base(tmp_path_factory: pytest.TempPathFactory, real_cohort: dict[str, Path]) -> Path:
    """A store with site-c imported and the example Analyses registered; no rules."""
    home = tmp_path_factory.mktemp("rules-cli") / "home"
    rb(home, "import", str(real_cohort["site-c"]), "--dataset", "site-c")
    for name in ("brain-mask", "tissue-volumes", "qc-snapshot"):
        rb(home, "analysis", "register", str(ROOT / "analyses" / name))
    return home


@pytest.fixture
def home(base: Path, tmp_path: Path) -> Path:
    shutil.copytree(base, tmp_path / "home")
    return tmp_path / "home"


def test_apply_refuses_a_broken_file_and_keeps_the_rules_in_force(home: Path, tmp_path: Path) -> None:
    rb(home, "rules", "apply", str(ROOT / "pipeline_rules"))
    broken = tmp_path / "broken"
    broken.mkdir()
    text = (ROOT / "pipeline_rules" / "anat.yaml").read_text().replace("run: tissue-volumes", "run: tissue-volume")
    (broken / "anat.yaml").write_text(text)
    result = rb(home, "rules", "apply", str(broken), check=False)
    line = next(i for i, t in enumerate(text.splitlines(), 1) if "name: tissue-volumes-after-mask" in t)
    assert result.returncode == 1
    assert f"anat.yaml:{line}: rule 'tissue-volumes-after-mask': run: unknown analysis 'tissue-volume'" in result.stderr
    assert "did you mean 'tissue-volumes'?" in result.stderr and "Traceback" not in result.stderr
    listed = rb(home, "rules", "list").stdout.splitlines()
    assert len(listed) == 6 and listed[0].startswith("mask-every-t1w\tscan.indexed")  # the earlier set stays
    shown = json.loads(rb(home, "rules", "show", "final-tissue-volumes").stdout)
    assert shown["tag"] == {"query": "suffix=dseg", "tags": ["final", "display"]} and shown["line"] > 1


def test_explain_says_which_rules_match_and_what_they_would_plan(home: Path) -> None:
    rb(home, "rules", "apply", str(ROOT / "pipeline_rules"))
    target = "site-c/sub-003/ses-1/anat/sub-003_ses-1_T1w.nii.gz"
    entries = json.loads(rb(home, "rules", "explain", target, "--json").stdout)
    by_rule = {e["rule"]: e for e in entries}
    assert by_rule["mask-every-t1w"]["matches"] is True
    (job,) = by_rule["mask-every-t1w"]["jobs"]
    assert (
        job["analysis"] == "brain-mask" and job["sources"] == [target.split("/", 1)[1]] and job["state"] == "would run"
    )
    assert by_rule["tissue-volumes-after-mask"]["matches"] is False
    assert by_rule["tissue-volumes-after-mask"]["why"] == "the record was not produced by brain-mask"
    text = rb(home, "rules", "explain", target).stdout
    assert "MATCH mask-every-t1w" in text and "would run: brain-mask on" in text
    stack = open_stack(Settings(home=home))
    try:
        assert stack.index.jobs() == []  # explaining runs and plans nothing
    finally:
        stack.close()
    missing = rb(home, "rules", "explain", "site-c/sub-999/anat/x_T1w.nii.gz", check=False)
    assert missing.returncode == 1 and "not found" in missing.stderr


def test_rerun_queues_new_work_only_unless_forced_and_keys_come_from_what_runs(home: Path) -> None:
    copy = home  # no rules applied: only what rerun and run ask for runs
    query = "dataset=site-c AND sub=003"
    first = rb(copy, "rerun", "brain-mask", "--query", query).stdout
    assert "2 jobs planned, 2 queued, 0 already done" in first
    again = rb(copy, "rerun", "brain-mask", "--query", query).stdout
    assert "2 jobs planned, 2 queued" in again  # still waiting: announced again, not duplicated
    stack = open_stack(Settings(home=copy))
    try:
        jobs = stack.index.jobs()
        assert len(jobs) == 2 and {j.state for j in jobs} == {"planned"}
        # registered with the process executor: the key's digest is the analysis folder's, what runs
        assert {j.image_digest for j in jobs} == {folder_digest(str(ROOT / "analyses" / "brain-mask"))}
    finally:
        stack.close()
    ran = rb(copy, "run", "brain-mask", "--query", query).stdout
    assert "0 succeeded" not in ran and "2 succeeded, 0 failed, 0 skipped" in ran  # run waits for queued work too
    done = rb(copy, "rerun", "brain-mask", "--query", query).stdout
    assert "2 jobs planned, 0 queued, 2 already done" in done
    forced = rb(copy, "rerun", "brain-mask", "--query", query, "--force").stdout
    assert "2 jobs planned, 2 queued, 0 already done" in forced
    stack = open_stack(Settings(home=copy))
    try:
        assert len(stack.index.jobs()) == 4  # forced: new keys for identical inputs
    finally:
        stack.close()
