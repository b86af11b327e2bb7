"""Fixtures for Analyses: a real Docker engine and base image, both executors, a cohort store.

The ``docker_engine`` fixture lives in tests/conftest.py.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest

from rollerblade.adapters import docker_exec, process_exec
from rollerblade.adapters.local_exec import LocalExecutor
from rollerblade.pipeline import analyses as analyses_use
from rollerblade.ports import Executor
from rollerblade.stack import Stack
from tests.conftest import ACTOR

ROOT = Path(__file__).resolve().parents[2]
TOOLBOX = Path(__file__).parent / "toolbox"
#: This session's container label: cleanup never touches another session's containers.
STORE_ID = f"rollerblade-tests-{os.getpid()}"


@pytest.fixture(params=["docker", "process"])
def executor(request: pytest.FixtureRequest, docker_engine: None, stack: Stack) -> LocalExecutor:
    where = {"storage": stack.storage, "workdir": stack.settings.work_root}
    if request.param == "docker":
        return docker_exec.DockerExecutor(store_id=STORE_ID, **where)
    return process_exec.ProcessExecutor(**where)


@pytest.fixture
def docker_executor(docker_engine: None, stack: Stack) -> LocalExecutor:
    return docker_exec.DockerExecutor(store_id=STORE_ID, storage=stack.storage, workdir=stack.settings.work_root)


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
