"""The Executor port as plain processes on the host (for machines without Docker).

The command runs in the analysis folder with ``{input}``/``{output}`` replaced by the
staged folders, in its own process group, with an address-space limit (``memory``) and a
wall-clock ``timeout`` (the whole group is killed). There is no network isolation and no
read-only input here: use the Docker executor for untrusted code.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import resource
import signal
import subprocess
import threading
from pathlib import Path

from rollerblade.adapters.local_exec import ExecResult, ExecSpec, LocalExecutor
from rollerblade.adapters.logcap import CappedLog, now
from rollerblade.errors import InputError
from rollerblade.ports import Storage


def folder_digest(folder: str) -> str:
    """A content digest of an analysis folder (stands in for an image digest)."""
    digest = hashlib.sha256()
    root = Path(folder)
    for path in sorted(p for p in root.rglob("*") if p.is_file() and "__pycache__" not in p.parts):
        digest.update(path.relative_to(root).as_posix().encode() + b"\0" + path.read_bytes() + b"\0")
    return "sha256:" + digest.hexdigest()


class ProcessExecutor(LocalExecutor):
    name = "process"

    def __init__(self, *, storage: Storage, workdir: Path) -> None:
        super().__init__(storage=storage, workdir=workdir)
        self._running: dict[str, subprocess.Popen[bytes]] = {}
        self._run_lock = threading.Lock()

    def prepare(self, *, folder: str, image_build: str | None, image_ref: str | None, tag: str) -> str:
        if not Path(folder).is_dir():
            raise InputError(f"{folder}: not a folder")
        return folder_digest(folder)

    def run(self, *, spec: ExecSpec) -> ExecResult:
        started = now()
        command = [
            part.replace("{input}", spec.input_dir).replace("{output}", spec.output_dir) for part in spec.command
        ]
        env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "HOME": spec.output_dir,
            "LANG": "C.UTF-8",
            **{
                k: v.replace("/input", spec.input_dir).replace("/output", spec.output_dir)
                if k in ("ROLLERBLADE_INPUT", "ROLLERBLADE_OUTPUT", "ROLLERBLADE_SLICE_FILE")
                else v
                for k, v in spec.env.items()
            },
        }

        def limits() -> None:
            resource.setrlimit(resource.RLIMIT_AS, (spec.memory, spec.memory))

        log = CappedLog(spec.log_path, spec.log_limit)
        try:
            proc = subprocess.Popen(
                command,
                cwd=spec.image,
                env=env,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
                preexec_fn=limits,
            )
        except OSError as e:
            log.close()
            return ExecResult(exit_code=None, started=started, ended=now(), error=f"cannot start {command[0]}: {e}")
        with self._run_lock:
            self._running[spec.job_key] = proc
        expired = threading.Event()

        def expire() -> None:
            expired.set()
            self._kill(proc)

        timer = threading.Timer(spec.timeout, expire)
        timer.start()
        try:
            assert proc.stdout is not None
            while chunk := proc.stdout.read(65536):
                log.write(chunk)
            code = proc.wait()
        finally:
            timer.cancel()
            log.close()
            if proc.stdout is not None:
                proc.stdout.close()
            with self._run_lock:
                self._running.pop(spec.job_key, None)
        timed_out = expired.is_set()
        return ExecResult(
            exit_code=code,
            started=started,
            ended=now(),
            timed_out=timed_out,
            interrupted=getattr(proc, "_rb_stopped", False),
            log_bytes=log.total,
            log_truncated=log.truncated,
        )

    @staticmethod
    def _kill(proc: subprocess.Popen[bytes]) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)

    def _stop_runs(self) -> None:
        with self._run_lock:
            running = list(self._running.values())
        for proc in running:
            proc._rb_stopped = True  # type: ignore[attr-defined]
            self._kill(proc)

    def cleanup(self) -> int:
        return 0  # processes die with their parent's session; nothing outlives a run
