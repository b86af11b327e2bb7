"""A killed ``rollerblade run`` leaves no half-state: running it again removes the
orphaned containers, finishes the remaining jobs and re-runs none that succeeded."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import docker

from rollerblade.adapters.docker_exec import STORE_LABEL
from rollerblade.settings import Settings
from rollerblade.stack import make_executor, open_stack
from tests.conftest import ACTOR


def cli(home: Path, *args: str) -> list[str]:
    return [sys.executable, "-m", "rollerblade.cli.main", "--home", str(home), *args]


def test_kill_and_resume(
    tmp_path: Path, real_cohort: dict[str, Path], toolbox: Callable[..., Path], docker_engine: None
) -> None:
    home = tmp_path / "home"
    subprocess.run(
        cli(home, "import", str(real_cohort["site-a"]), "--dataset", "site-a"), check=True, capture_output=True
    )
    folder = toolbox(
        "slow", outputs=["sub-{sub}[_ses-{ses}]_desc-slow_T1w.nii.gz"], params={"mode": "sleep", "seconds": 1.5}
    )
    subprocess.run(cli(home, "analysis", "register", str(folder)), check=True, capture_output=True)
    proc = subprocess.Popen(
        cli(home, "run", "slow", "--parallel", "1"),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    stack = open_stack(Settings(home=home))
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            states = [j.state for j in stack.index.jobs(analysis="slow")]
            if states.count("succeeded") >= 2 and "running" in states:
                break
            time.sleep(0.1)
        time.sleep(0.5)  # let the next container start
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        states = [j.state for j in stack.index.jobs(analysis="slow")]
        done = states.count("succeeded")
        assert 2 <= done < 6 and "running" in states
        committed = {o.key for o in stack.storage.list(prefix="derivatives/slow/") if o.key.endswith(".nii.gz")}
        assert len(committed) == done  # nothing of the killed job is visible
        store_id = make_executor(Settings(home=home), stack.storage).store_id  # type: ignore[attr-defined]
        client = docker.from_env()
        orphans = client.containers.list(all=True, filters={"label": f"{STORE_LABEL}={store_id}"})
        assert orphans, "the killed run left its container behind (as a real crash would)"
        client.close()
        again = subprocess.run(cli(home, "run", "slow"), capture_output=True, text=True, timeout=300)
        assert again.returncode == 0, again.stderr
        assert f"{6 - done} succeeded, 0 failed, {done} skipped (already done)" in again.stdout
        assert [j.state for j in stack.index.jobs(analysis="slow")] == ["succeeded"] * 6
        client = docker.from_env()
        assert client.containers.list(all=True, filters={"label": f"{STORE_LABEL}={store_id}"}) == []
        client.close()
        from rollerblade.pipeline import querying

        assert querying.count_records("analysis=slow", index=stack.index, actor=ACTOR) == 6
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
        stack.close()
