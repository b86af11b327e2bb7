"""``rollerblade serve`` as a user runs it: killed with SIGKILL at random moments and
started again, it loses no event, runs no succeeded job again, and ends in the same
state as an uninterrupted run: exact job counts and tags.

The jobs run with the process executor here (the example Analyses' scripts on the
host's Python), which makes each cycle a few seconds; the Docker executor goes through
the same worker and handlers in tests/analyses/test_pipeline.py.
"""

from __future__ import annotations

import os
import random
import shutil
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest

from rollerblade.pipeline import querying
from rollerblade.pipeline.messages import TOPICS
from rollerblade.settings import Settings
from rollerblade.stack import open_stack
from tests.conftest import ACTOR

ROOT = Path(__file__).resolve().parents[2]
ENV = {**os.environ, "ROLLERBLADE_EXECUTOR": "process", "PYTHONPATH": str(ROOT / "shared")}


def cli(home: Path, *args: str) -> list[str]:
    return [sys.executable, "-m", "rollerblade.cli.main", "--home", str(home), *args]


def serve(home: Path, log: Path) -> subprocess.Popen[bytes]:
    with open(log, "ab") as out:
        return subprocess.Popen(
            cli(home, "serve", "--poll", "0.1"), env=ENV, stdout=out, stderr=out, start_new_session=True
        )


def settled(home: Path, expected_jobs: int) -> bool:
    stack = open_stack(Settings(home=home))
    try:
        jobs = stack.index.jobs()
        pending = sum(stack.bus.pending(topic=t) for t in TOPICS)  # type: ignore[attr-defined]
        return len(jobs) == expected_jobs and all(j.state in ("succeeded", "failed") for j in jobs) and not pending
    finally:
        stack.close()


@pytest.fixture(scope="module")
def prepared(tmp_path_factory: pytest.TempPathFactory, real_cohort: dict[str, Path]) -> Path:
    """A store with the example Analyses registered and the example rules applied."""
    home = tmp_path_factory.mktemp("serve") / "home"
    for name in ("brain-mask", "tissue-volumes", "qc-snapshot"):
        subprocess.run(cli(home, "analysis", "register", str(ROOT / "analyses" / name)), env=ENV, check=True)
    applied = subprocess.run(
        cli(home, "rules", "apply", str(ROOT / "pipeline_rules")), env=ENV, check=True, capture_output=True, text=True
    )
    assert "applied 6 rules" in applied.stdout
    return home


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_sigkill_at_random_moments_then_restart(
    prepared: Path, real_cohort: dict[str, Path], tmp_path: Path, seed: int
) -> None:
    home = tmp_path / "home"
    shutil.copytree(prepared, home)
    source = real_cohort["site-b"]
    target = home / "bucket" / "datasets" / "drop"
    target.mkdir(parents=True)
    for name in ("dataset_description.json", "participants.tsv"):
        shutil.copyfile(source / name, target / name)
    subject = sorted(p.name for p in source.glob("sub-*"))[seed - 1]
    shutil.copytree(source / subject, target / subject)  # 1 participant x 2 sessions: 2 T1w images
    expected = 6  # by hand: 2 brain masks, 2 tissue-volume jobs (per session), 2 mask snapshots
    rng = random.Random(seed)
    log = tmp_path / "serve.log"
    for _ in range(2):  # two kills at random moments
        proc = serve(home, log)
        time.sleep(rng.uniform(1.0, 5.0))
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    proc = serve(home, log)
    try:
        deadline = time.monotonic() + 300
        while not settled(home, expected) and time.monotonic() < deadline:
            time.sleep(0.5)
        while log.read_text().count("serving ") < 3 and time.monotonic() < deadline:
            time.sleep(0.1)  # the last serve has installed its signal handlers
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=60) == 0, log.read_text()[-3000:]
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    stack = open_stack(Settings(home=home))
    try:
        jobs = stack.index.jobs()
        assert Counter((j.analysis, j.state) for j in jobs) == {
            ("brain-mask", "succeeded"): 2,
            ("tissue-volumes", "succeeded"): 2,
            ("qc-snapshot", "succeeded"): 2,
        }, log.read_text()[-3000:]
        assert all(j.attempts - j.lost == 1 for j in jobs)  # kills cost no try; nothing ran twice to success
        count = lambda q: querying.count_records(q, index=stack.index, actor=ACTOR)  # noqa: E731
        assert count("tag=final") == 4 and count("tag=display") == 6
        assert count("analysis=brain-mask AND suffix=mask") == 2
        assert not list(stack.storage.list(prefix="jobs/"))  # no staged outputs left behind
    finally:
        stack.close()
