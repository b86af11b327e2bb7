"""The asynchronous Executor port, one contract over docker | process | gke: a job's slice
goes in through storage keys, its outputs and log come back to storage, and its end
(succeeded, failed with the exit code, timeout, out of memory, refused symlinks) is
reported by ``finished`` (never returned by ``submit``)."""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path

import pytest

from rollerblade.adapters import docker_exec, process_exec
from rollerblade.analyses.jobs import JobEnded
from rollerblade.ports import Executor, JobSpec
from rollerblade.stack import Stack, make_gke_executor
from tests.analyses.conftest import STORE_ID, TOOLBOX
from tests.gke.conftest import quick


@pytest.fixture(params=["docker", "process", "gke"])
def port(request: pytest.FixtureRequest, docker_engine: None, tmp_path: Path) -> tuple[Executor, Stack]:
    if request.param == "gke":
        stack: Stack = request.getfixturevalue("gke_stack")
        return quick(make_gke_executor(stack.settings, stack.storage, stack.settings.work_root)), stack
    stack = request.getfixturevalue("stack")
    where = {"storage": stack.storage, "workdir": stack.settings.work_root}
    if request.param == "docker":
        return docker_exec.DockerExecutor(store_id=STORE_ID, **where), stack
    return process_exec.ProcessExecutor(**where), stack


def submit(port: tuple[Executor, Stack], tmp_path: Path, mode: str, **overrides: object) -> JobSpec:
    executor, stack = port
    folder = tmp_path / "tool"
    if not folder.exists():
        shutil.copytree(TOOLBOX, folder)
    image = executor.prepare(folder=str(folder), image_build=".", image_ref=None, tag="rollerblade-test/tool:1")
    stack.storage.put_bytes(key="datasets/d/sub-01/data.txt", data=b"hello")
    key = f"{mode}-{tmp_path.name}"[:60].replace("_", "-").lower()
    job = {
        "slice": "sub-01",
        "params": {"mode": mode, "seconds": 60},
        "outputs": ["out/result.json"],
        "records": [{"path": "sub-01/data.txt"}],
    }
    values: dict[str, object] = dict(
        job_key=key,
        attempt=1,
        image=str(folder) if executor.name == "process" else image,
        command=("python3", "tool.py"),
        inputs={"sub-01/data.txt": "datasets/d/sub-01/data.txt"},
        files={".rollerblade/slice.json": json.dumps(job).encode()},
        output_prefix=f"jobs/{key}/1/output/",
        log_key=f"logs/test/{key}.log",
        env={
            "ROLLERBLADE_INPUT": "/input",
            "ROLLERBLADE_OUTPUT": "/output",
            "ROLLERBLADE_SLICE_FILE": "/input/.rollerblade/slice.json",
        },
        cpu=0.25,
        memory=512 << 20,
        timeout=60.0,
        labels={"analysis": "tool", "dataset": "d"},
    )
    values.update(overrides)
    spec = JobSpec(**values)  # type: ignore[arg-type]
    executor.submit(spec=spec)
    return spec


def ended(executor: Executor, key: str, timeout: float = 180.0) -> JobEnded:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for end in executor.finished():
            if end.key == key:
                executor.release(keys=[key])
                return end
        time.sleep(0.3)
    raise AssertionError(f"job {key} did not end in {timeout} s")


def test_success_stores_outputs_and_log(port: tuple[Executor, Stack], tmp_path: Path) -> None:
    executor, stack = port
    spec = submit(port, tmp_path, "ok")
    end = ended(executor, spec.job_key)
    assert (end.outcome, end.exit_code, end.attempt) == ("succeeded", 0, 1), end
    assert end.outputs == ("out/result.json",)
    stored = json.loads(stack.storage.read(key=spec.output_prefix + "out/result.json"))
    assert stored == {"Mode": "ok", "Records": 1}  # the tool counted the staged slice's records
    assert "mode=ok slice=sub-01 records=1" in stack.storage.read(key=spec.log_key).decode()
    assert end.started and end.ended and end.started <= end.ended
    assert spec.job_key not in executor.active()  # released: nothing left to report


def test_exit_code_and_stderr(port: tuple[Executor, Stack], tmp_path: Path) -> None:
    executor, stack = port
    spec = submit(port, tmp_path, "crash")
    end = ended(executor, spec.job_key)
    assert (end.outcome, end.exit_code) == ("failed", 3), end
    assert "something went wrong" in stack.storage.read(key=spec.log_key).decode()


def test_timeout(port: tuple[Executor, Stack], tmp_path: Path) -> None:
    executor, _ = port
    spec = submit(port, tmp_path, "sleep", timeout=2.0)
    assert ended(executor, spec.job_key).outcome == "timeout"


@pytest.mark.parametrize("port", ["docker", "gke"], indirect=True)  # processes have an rlimit, not an OOM kill
def test_out_of_memory(port: tuple[Executor, Stack], tmp_path: Path) -> None:
    executor, _ = port
    spec = submit(port, tmp_path, "oom", memory=128 << 20)  # the tool allocates 1 GiB
    end = ended(executor, spec.job_key)
    assert end.outcome == "oom", end


def test_symlink_outputs_are_refused(port: tuple[Executor, Stack], tmp_path: Path) -> None:
    executor, _ = port
    spec = submit(port, tmp_path, "symlink")
    end = ended(executor, spec.job_key)
    assert end.outcome == "succeeded" and any("link.txt is a symlink" in p for p in end.problems), end
    assert "link.txt" not in end.outputs
