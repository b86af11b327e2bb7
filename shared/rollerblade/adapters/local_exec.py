"""The asynchronous Executor port on this machine, shared by the Docker and process executors.

``submit`` starts a thread per attempt and returns. The thread stages the job's slice
from storage into a private folder (``inputs`` copied, ``files`` written, all read-only),
runs the command through the subclass's blocking :meth:`LocalExecutor.run` (host paths:
:class:`ExecSpec`), then stores the log and every regular file written to the output
folder under the attempt's storage prefix, and records how the attempt ended.
``finished`` hands those ends to the caller, who publishes them as ``job.ended`` events
and then releases them; the job's record in the index is never touched here.
"""

from __future__ import annotations

import abc
import dataclasses
import logging
import shutil
import threading
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

from rollerblade.analyses.jobs import JobEnded, Outcome
from rollerblade.errors import NotFound
from rollerblade.pipeline.staging import stage_slice, store_outputs
from rollerblade.ports import Executor, JobSpec, Storage

log = logging.getLogger(__name__)


@dataclasses.dataclass(frozen=True)
class ExecSpec:
    """One blocking run on this machine: a job's staged slice in, its outputs out.

    ``command`` may contain ``{input}`` and ``{output}``, which the executor replaces by
    where it mounts ``input_dir`` (read-only) and ``output_dir`` (writable): ``/input``
    and ``/output`` in a container. ``image`` is a local image id for Docker, the
    analysis folder for the process executor.
    """

    job_key: str
    image: str
    command: tuple[str, ...]
    input_dir: str
    output_dir: str
    env: Mapping[str, str]
    cpu: float
    memory: int
    timeout: float
    log_path: str
    log_limit: int = 1 << 20
    pids_limit: int = 256


@dataclasses.dataclass(frozen=True)
class ExecResult:
    """How a run ended. ``error`` is set when it could not start or the executor failed."""

    exit_code: int | None
    started: str
    ended: str
    oom_killed: bool = False
    timed_out: bool = False
    interrupted: bool = False
    log_bytes: int = 0
    log_truncated: bool = False
    error: str | None = None


class LocalExecutor(Executor):
    """Threads around a blocking ``run``; see the module docstring."""

    def __init__(self, *, storage: Storage, workdir: Path) -> None:
        self.storage, self.workdir = storage, workdir
        self._lock = threading.Lock()
        self._threads: dict[str, threading.Thread] = {}
        self._ended: dict[str, JobEnded] = {}
        #: Called (from the attempt's thread) when an attempt ends: a process with no event
        #: loop of its own (a function) publishes the end right away.
        self.on_end: Callable[[], object] | None = None

    @abc.abstractmethod
    def run(self, *, spec: ExecSpec) -> ExecResult:
        """Run one command to its end (blocking)."""

    @abc.abstractmethod
    def _stop_runs(self) -> None:
        """Kill every run in progress (reported interrupted)."""

    def submit(self, *, spec: JobSpec) -> None:
        with self._lock:
            if spec.job_key in self._threads or spec.job_key in self._ended:
                return
            thread = threading.Thread(target=self._attempt, args=(spec,), name=f"job-{spec.job_key[:12]}", daemon=True)
            self._threads[spec.job_key] = thread
        thread.start()

    def finished(self) -> list[JobEnded]:
        with self._lock:
            return list(self._ended.values())

    def release(self, *, keys: Sequence[str]) -> None:
        with self._lock:
            for key in keys:
                self._ended.pop(key, None)

    def active(self) -> set[str]:
        with self._lock:
            return set(self._threads) | set(self._ended)

    def running(self) -> int:
        with self._lock:
            return len(self._threads)

    def stop_all(self) -> None:
        self._stop_runs()

    def wait(self, timeout: float | None = None) -> None:
        """Wait for the attempts in progress to end (after ``stop_all``, at shutdown)."""
        with self._lock:
            threads = list(self._threads.values())
        for thread in threads:
            thread.join(timeout)

    def _attempt(self, spec: JobSpec) -> None:
        folder = self.workdir / "jobs" / f"{spec.job_key[:16]}-{spec.attempt}"
        try:
            ended = self._stage_run_store(spec, folder)
        except NotFound as e:  # an input deleted between planning and staging
            ended = JobEnded(spec.job_key, spec.attempt, "error", message=f"cannot stage the slice: {e} (deleted?)")
        except Exception as e:  # an outage while staging or storing: the attempt ends in error
            log.exception("job %s attempt %d failed in the executor", spec.job_key[:12], spec.attempt)
            ended = JobEnded(spec.job_key, spec.attempt, "error", message=f"executor: {type(e).__name__}: {e}")
        finally:
            shutil.rmtree(folder, ignore_errors=True)
        with self._lock:
            self._threads.pop(spec.job_key, None)
            self._ended[spec.job_key] = ended
        if self.on_end is not None:
            try:
                self.on_end()
            except Exception:  # the end stays in finished(); the next collect publishes it
                log.exception("publishing the end of job %s failed", spec.job_key[:12])

    def _stage_run_store(self, spec: JobSpec, folder: Path) -> JobEnded:
        shutil.rmtree(folder, ignore_errors=True)
        staged, output = folder / "input", folder / "output"
        output.mkdir(parents=True)
        stage_slice(self.storage, spec.inputs, spec.files, staged)
        log_path = folder / "log.txt"
        result = self.run(
            spec=ExecSpec(
                job_key=spec.job_key,
                image=spec.image,
                command=spec.command,
                input_dir=str(staged),
                output_dir=str(output),
                env=spec.env,
                cpu=spec.cpu,
                memory=spec.memory,
                timeout=spec.timeout,
                log_path=str(log_path),
                log_limit=spec.log_limit,
                pids_limit=spec.pids_limit,
            )
        )
        if log_path.exists():
            self.storage.put_file(key=spec.log_key, source=str(log_path))
        outputs, problems = store_outputs(self.storage, output, spec.output_prefix)
        outcome: Outcome
        if result.error:
            outcome, message = "error", result.error
        elif result.interrupted:
            outcome, message = "interrupted", "interrupted by a shutdown"
        elif result.oom_killed:
            outcome, message = "oom", f"killed: out of memory (limit {spec.memory >> 20} MiB)"
        elif result.timed_out:
            outcome, message = "timeout", f"killed: timed out after {spec.timeout:g} s"
        elif result.exit_code != 0:
            outcome, message = "failed", f"exited with code {result.exit_code}"
        else:
            outcome, message = "succeeded", ""
        if result.log_truncated:
            message += f"{'; ' if message else ''}log truncated to {spec.log_limit} bytes (of {result.log_bytes})"
        return JobEnded(
            key=spec.job_key,
            attempt=spec.attempt,
            outcome=outcome,
            exit_code=result.exit_code,
            started=result.started,
            ended=result.ended,
            message=message,
            outputs=tuple(outputs),
            problems=tuple(problems),
        )
