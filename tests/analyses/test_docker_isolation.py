"""What only the Docker executor guarantees: no network, read-only input, non-root,
no capabilities, OOM reported as such; images never pulled from a registry."""

from __future__ import annotations

from pathlib import Path

import pytest

from rollerblade.errors import InputError
from rollerblade.ports import Executor
from tests.analyses.test_executor_contract import exec_spec


def test_no_network(docker_executor: Executor, tmp_path: Path) -> None:
    result = docker_executor.run(spec=exec_spec(tmp_path, docker_executor, "network"))
    assert result.exit_code != 0
    assert (
        "Network is unreachable" in (tmp_path / "log.txt").read_text() or "Errno" in (tmp_path / "log.txt").read_text()
    )


def test_input_is_read_only(docker_executor: Executor, tmp_path: Path) -> None:
    result = docker_executor.run(spec=exec_spec(tmp_path, docker_executor, "write-input"))
    assert result.exit_code != 0 and "Read-only file system" in (tmp_path / "log.txt").read_text()
    assert not (tmp_path / "input" / "tamper.txt").exists()


def test_runs_as_nobody(docker_executor: Executor, tmp_path: Path) -> None:
    result = docker_executor.run(spec=exec_spec(tmp_path, docker_executor, "whoami"))
    assert result.exit_code == 0 and "uid=65534" in (tmp_path / "log.txt").read_text()


def test_missing_image_reference_is_refused(docker_executor: Executor, tmp_path: Path) -> None:
    with pytest.raises(InputError, match="is not in the local Docker engine"):
        docker_executor.prepare(folder=str(tmp_path), image_build=None, image_ref="no/such:image", tag="x")


def test_build_failure_is_explained(docker_executor: Executor, tmp_path: Path) -> None:
    (tmp_path / "Dockerfile").write_text("FROM rollerblade/base:py311\nRUN exit 7\n")
    with pytest.raises(InputError, match="building the image from .* failed"):
        docker_executor.prepare(folder=str(tmp_path), image_build=".", image_ref=None, tag="rollerblade-test/bad:1")
