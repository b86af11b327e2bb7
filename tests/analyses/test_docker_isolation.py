"""What only the Docker executor guarantees: no network, read-only input, non-root,
no capabilities, OOM reported as such; images never pulled from a registry."""

from __future__ import annotations

import json
import socket
from pathlib import Path

import pytest

from rollerblade.adapters.local_exec import LocalExecutor
from rollerblade.errors import InputError
from tests.analyses.test_executor_contract import exec_spec

#: Run inside the container: its network interfaces (from /proc/net/dev, which shows the
#: container's own network namespace) and whether a TCP connection to the host's
#: loopback listener on port argv[1] succeeds.
NETWORK_PROBE = """
import json, socket, sys
with open("/proc/net/dev") as f:
    interfaces = sorted(line.split(":")[0].strip() for line in f.read().splitlines()[2:] if ":" in line)
try:
    socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=2).close()
    reached = "connected"
except OSError as e:
    reached = type(e).__name__
print("PROBE " + json.dumps({"interfaces": interfaces, "reached": reached}), flush=True)
"""


def test_no_network(docker_executor: LocalExecutor, tmp_path: Path) -> None:
    """Only the container's own loopback exists: no other interface, and a server listening
    on the host's 127.0.0.1 is out of reach (the container's 127.0.0.1 is its own ``lo``)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as server:
        server.bind(("127.0.0.1", 0))
        server.listen(1)
        port = server.getsockname()[1]
        spec = exec_spec(tmp_path, docker_executor, "network", command=("python3", "-c", NETWORK_PROBE, str(port)))
        result = docker_executor.run(spec=spec)
        log = (tmp_path / "log.txt").read_text()
        assert result.exit_code == 0, log
        server.setblocking(False)
        try:
            connection, peer = server.accept()
        except BlockingIOError:
            peer = None
        else:
            connection.close()
    probe = json.loads(next(line for line in log.splitlines() if line.startswith("PROBE "))[len("PROBE ") :])
    assert probe["interfaces"] == ["lo"], log
    assert probe["reached"] == "ConnectionRefusedError", log
    assert peer is None, f"the container reached the host's loopback listener from {peer}"


def test_input_is_read_only(docker_executor: LocalExecutor, tmp_path: Path) -> None:
    result = docker_executor.run(spec=exec_spec(tmp_path, docker_executor, "write-input"))
    assert result.exit_code != 0 and "Read-only file system" in (tmp_path / "log.txt").read_text()
    assert not (tmp_path / "input" / "tamper.txt").exists()


def test_runs_as_nobody(docker_executor: LocalExecutor, tmp_path: Path) -> None:
    result = docker_executor.run(spec=exec_spec(tmp_path, docker_executor, "whoami"))
    assert result.exit_code == 0 and "uid=65534" in (tmp_path / "log.txt").read_text()


def test_missing_image_reference_is_refused(docker_executor: LocalExecutor, tmp_path: Path) -> None:
    with pytest.raises(InputError, match="is not in the local Docker engine"):
        docker_executor.prepare(folder=str(tmp_path), image_build=None, image_ref="no/such:image", tag="x")


def test_build_failure_is_explained(docker_executor: LocalExecutor, tmp_path: Path) -> None:
    (tmp_path / "Dockerfile").write_text("FROM rollerblade/base:py311\nRUN exit 7\n")
    with pytest.raises(InputError, match="building the image from .* failed"):
        docker_executor.prepare(folder=str(tmp_path), image_build=".", image_ref=None, tag="rollerblade-test/bad:1")
