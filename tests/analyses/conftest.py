"""Fixtures for Analyses: a real Docker engine and base image, both executors, a cohort store.

The engine is started with scripts/dockerd.sh when none answers (no bridge, no
iptables) and stopped at the end of the session if this fixture started it; the base
image comes from docker/base/build.sh (built once, then cached). A missing engine is a
test error, never a skip.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from rollerblade.adapters import docker_exec, process_exec
from rollerblade.pipeline import analyses as analyses_use
from rollerblade.ports import Executor
from rollerblade.stack import Stack
from tests.conftest import ACTOR

ROOT = Path(__file__).resolve().parents[2]
TOOLBOX = Path(__file__).parent / "toolbox"


@pytest.fixture(scope="session")
def docker_engine() -> Iterator[None]:
    started = subprocess.run([str(ROOT / "scripts" / "dockerd.sh")], capture_output=True, text=True, timeout=60)
    assert started.returncode == 0, f"could not start the Docker engine: {started.stderr}"
    pid = int(started.stdout.strip()) if started.stdout.strip() else None
    built = subprocess.run([str(ROOT / "docker" / "base" / "build.sh")], capture_output=True, text=True, timeout=900)
    assert built.returncode == 0, f"could not build the base image: {built.stderr[-3000:]}"
    yield
    if pid is not None:
        os.kill(pid, signal.SIGTERM)


@pytest.fixture(params=["docker", "process"])
def executor(request: pytest.FixtureRequest, docker_engine: None) -> Executor:
    if request.param == "docker":
        return docker_exec.DockerExecutor(store_id="rollerblade-tests")
    return process_exec.ProcessExecutor()


@pytest.fixture
def docker_executor(docker_engine: None) -> Executor:
    return docker_exec.DockerExecutor(store_id="rollerblade-tests")


Register = Callable[..., dict[str, object]]


@pytest.fixture
def toolbox(tmp_path: Path) -> Callable[..., Path]:
    """``toolbox(name, outputs=[...], params={...}, **yaml_keys)``: an analysis folder built
    from tests/analyses/toolbox (one script that misbehaves on request)."""

    def make(name: str, *, outputs: list[str], params: dict[str, object] | None = None, **keys: object) -> Path:
        import yaml

        folder = tmp_path / "analyses" / name
        shutil.copytree(TOOLBOX, folder, dirs_exist_ok=True)
        spec = {
            "name": name,
            "version": "1",
            "image": {"build": "."},
            "command": ["python3", "tool.py"],
            "input": "suffix=T1w AND extension=.nii.gz AND NOT exists(analysis)",
            "resources": {"cpu": 0.5, "memory": "512m", "timeout": 60},
            "outputs": outputs,
            "params": params or {},
            **keys,
        }
        (folder / "analysis.yaml").write_text(yaml.safe_dump(spec, sort_keys=False))
        return folder

    return make


@pytest.fixture
def register(stack: Stack) -> Callable[[Path, Executor], dict[str, object]]:
    def run(folder: Path, executor: Executor) -> dict[str, object]:
        return analyses_use.register_analysis(folder, index=stack.index, executor=executor, actor=ACTOR)

    return run
