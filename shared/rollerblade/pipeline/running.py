"""``run_analysis``: run a registered Analysis over every slice a query selects.

Plan (pure: :func:`rollerblade.analyses.jobs.plan_jobs`), skip the jobs whose key already
succeeded, then run the rest in parallel within the machine's CPU and memory budget.
Each job: stage its slice as BIDS under ``input/``, run the executor, check the outputs
(every declared file present; nothing undeclared; no symlinks), then commit them with
provenance sidecars to ``derivatives/<analysis>/<dataset>/`` and index them through the
object-event handler. A failed job commits nothing. Interrupted runs leave jobs that are
not ``succeeded``, so running again finishes exactly those.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import dataclasses
import fcntl
import json
import os
import re
import shutil
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from rollerblade.abids import layout
from rollerblade.abids.schema import vocabulary
from rollerblade.analyses.jobs import JobRecord, PlannedJob, plan_jobs
from rollerblade.analyses.spec import AnalysisSpec
from rollerblade.errors import InputError
from rollerblade.pipeline.analyses import get_analysis
from rollerblade.pipeline.download import write_selection
from rollerblade.pipeline.events import OBJECTS_TOPIC, drain_object_events
from rollerblade.pipeline.querying import find_records
from rollerblade.ports import EventBus, ExecResult, ExecSpec, Executor, Index, Storage
from rollerblade.records import Actor, ObjectEvent, ScanRecord

Progress = Callable[[JobRecord], None]


@dataclasses.dataclass
class RunReport:
    analysis: str
    planned: list[PlannedJob]
    skipped: list[str] = dataclasses.field(default_factory=list)
    succeeded: list[str] = dataclasses.field(default_factory=list)
    failed: list[JobRecord] = dataclasses.field(default_factory=list)
    parallel: int = 1


@dataclasses.dataclass(frozen=True)
class Machine:
    """What the run may use: cores and bytes of memory."""

    cpus: float
    memory: int

    @classmethod
    def this(cls) -> Machine:
        return cls(cpus=float(os.cpu_count() or 1), memory=os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES"))


def _combined(spec: AnalysisSpec, query: str) -> str:
    parts = [f"({q})" for q in (spec.input, query) if q.strip()]
    return " AND ".join([*parts, "NOT exists(error)"])


def _gib(n: int) -> str:
    return f"{n / (1 << 30):.1f} GiB"


def budget(spec: AnalysisSpec, requested: int | None, machine: Machine) -> int:
    """How many jobs may run at once; refuses jobs the machine cannot hold at all."""
    res = spec.resources
    if res.gpu:
        raise InputError(f"analysis {spec.name} declares {res.gpu} GPU(s); the local executors have none")
    if res.memory > machine.memory:
        raise InputError(
            f"analysis {spec.name} declares {_gib(res.memory)} of memory per job but this machine has "
            f"{_gib(machine.memory)}; lower resources.memory in its analysis.yaml"
        )
    by_cpu = max(1, int(machine.cpus // res.cpu)) if res.cpu <= machine.cpus else 1
    by_memory = max(1, int(machine.memory * 0.8 // res.memory))
    fits = min(by_cpu, by_memory)
    return max(1, min(requested, fits) if requested else fits)


def run_analysis(
    name: str,
    query: str,
    *,
    storage: Storage,
    index: Index,
    bus: EventBus,
    executor: Executor,
    actor: Actor,
    workdir: Path,
    parallel: int | None = None,
    force: bool = False,
    dry_run: bool = False,
    progress: Progress | None = None,
    machine: Machine | None = None,
    on_plan: Callable[[RunReport], None] | None = None,
) -> RunReport:
    spec, doc = get_analysis(name, index=index)
    records = list(find_records(_combined(spec, query), index=index, actor=actor))
    planned = plan_jobs(spec, doc["image_digest"], records)
    report = RunReport(analysis=name, planned=planned, parallel=budget(spec, parallel, machine or Machine.this()))
    todo = []
    for job in planned:
        previous = index.get_job(key=job.key)
        if previous is not None and previous.state == "succeeded" and not force:
            report.skipped.append(job.key)
        else:
            todo.append(job)
    if on_plan is not None:
        on_plan(report)
    if dry_run or not todo:
        return report
    runner = _Runner(spec, doc, storage=storage, index=index, bus=bus, executor=executor, actor=actor, workdir=workdir)
    with exclusive_run(workdir):
        return _execute(report, todo, runner, progress)


@contextlib.contextmanager
def exclusive_run(workdir: Path) -> Iterator[None]:
    """One ``run`` at a time per store: the orphan cleanup at start must not kill the
    containers of another live run."""
    workdir.mkdir(parents=True, exist_ok=True)
    with open(workdir / "run.lock", "w") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise InputError(
                f"another rollerblade run is in progress in this store ({workdir}); wait for it to finish"
            ) from None
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def _execute(report: RunReport, todo: list[PlannedJob], runner: _Runner, progress: Progress | None) -> RunReport:
    """Run ``todo`` in parallel with ``runner``, under the store's run lock."""
    # derivatives committed by an earlier, interrupted run may still wait to be indexed
    runner.drain()
    runner.executor.cleanup()  # containers a killed run left behind (the lock proves none is live)
    lock = threading.Lock()

    def one(job: PlannedJob) -> JobRecord:
        result = runner.run(job)
        with lock:
            if result.state == "succeeded":
                report.succeeded.append(job.key)
            else:
                report.failed.append(result)
            if progress is not None:
                progress(result)
        return result

    pool = concurrent.futures.ThreadPoolExecutor(max_workers=report.parallel)
    try:
        for _ in pool.map(one, todo):
            pass
    except BaseException:
        runner.executor.stop_all()
        pool.shutdown(wait=True, cancel_futures=True)
        raise
    finally:
        pool.shutdown(wait=True)
        runner.drain()
    return report


class _Runner:
    """Runs one planned job end to end and records its state."""

    def __init__(
        self,
        spec: AnalysisSpec,
        doc: dict[str, Any],
        *,
        storage: Storage,
        index: Index,
        bus: EventBus,
        executor: Executor,
        actor: Actor,
        workdir: Path,
    ) -> None:
        self.spec, self.doc = spec, doc
        self.storage, self.index, self.bus, self.executor, self.actor = storage, index, bus, executor, actor
        self.workdir = workdir
        self._index_lock = threading.Lock()

    def drain(self) -> None:
        """Index the derivatives whose object events wait on the bus."""
        drain_object_events(bus=self.bus, storage=self.storage, index=self.index, actor=self.actor)

    def record(self, job: PlannedJob, **changes: Any) -> JobRecord:
        base = self.index.get_job(key=job.key) or JobRecord(
            key=job.key,
            analysis=self.spec.name,
            version=self.spec.version,
            dataset=job.dataset,
            slice_id=job.slice_id,
            state="planned",
            image_digest=self.doc["image_digest"],
            params=dict(self.spec.params),
            sources=job.sources,
            outputs=job.outputs,
            actor=self.actor,
        )
        updated = dataclasses.replace(base, **changes)
        with self._index_lock:
            self.index.put_job(job=updated)
        return updated

    def run(self, job: PlannedJob) -> JobRecord:
        if job.problem:
            return self.record(job, state="failed", message=job.problem)
        previous = self.index.get_job(key=job.key)
        attempts = previous.attempts if previous is not None else 0
        for _ in range(self.spec.retries + 1):
            attempts += 1
            self.record(job, state="running", attempts=attempts, message="", exit_code=None)
            result, message, logs_key = self._attempt(job)
            if message is None:
                return self.record(
                    job,
                    state="succeeded",
                    started=result.started,
                    ended=result.ended,
                    exit_code=result.exit_code,
                    logs_key=logs_key,
                    message="",
                )
            final = self.record(
                job,
                state="failed",
                started=result.started,
                ended=result.ended,
                exit_code=result.exit_code,
                logs_key=logs_key,
                message=message,
            )
            if result.interrupted:
                break
        return final

    def _attempt(self, job: PlannedJob) -> tuple[ExecResult, str | None, str]:
        folder = self.workdir / "jobs" / job.key[:16]
        shutil.rmtree(folder, ignore_errors=True)
        staged, output = folder / "input", folder / "output"
        output.mkdir(parents=True)
        records = [r for r in (self.index.get_record(dataset=job.dataset, path=p) for p in job.sources) if r]
        write_selection(self.storage, self.index, job.dataset, records, staged)
        slice_doc = self._slice(job, records)
        (staged / ".rollerblade").mkdir()
        (staged / ".rollerblade" / "slice.json").write_text(json.dumps(slice_doc, indent=2))
        for path in staged.rglob("*"):
            path.chmod(0o755 if path.is_dir() else 0o644)
        staged.chmod(0o755)
        log_path = folder / "log.txt"
        values = {**job.entities, "dataset": job.dataset}
        command = tuple(_PLACEHOLDER.sub(lambda m: values.get(m.group(1), m.group(0)), p) for p in self.spec.command)
        env = {
            "ROLLERBLADE_INPUT": "/input",
            "ROLLERBLADE_OUTPUT": "/output",
            "ROLLERBLADE_SLICE_FILE": "/input/.rollerblade/slice.json",
            "ROLLERBLADE_SLICE": json.dumps(slice_doc),
            "ROLLERBLADE_PARAMS": json.dumps(dict(self.spec.params)),
        }
        res = self.spec.resources
        result = self.executor.run(
            spec=ExecSpec(
                job_key=job.key,
                image=self.doc["image_digest"] if self.executor.name == "docker" else self.doc["folder"],
                command=command,
                input_dir=str(staged),
                output_dir=str(output),
                env=env,
                cpu=res.cpu,
                memory=res.memory,
                timeout=res.timeout,
                log_path=str(log_path),
            )
        )
        logs_key = f"logs/{self.spec.name}/{job.key}.log"
        if log_path.exists():
            self.storage.put_file(key=logs_key, source=str(log_path))
        message = self._failure(result, job, output, logs_key)
        if message is None:
            self._commit(job, records, output, result, logs_key)
            shutil.rmtree(folder, ignore_errors=True)
        return result, message, logs_key

    def _slice(self, job: PlannedJob, records: list[ScanRecord]) -> dict[str, Any]:
        return {
            "analysis": self.spec.name,
            "version": self.spec.version,
            "job_key": job.key,
            "dataset": job.dataset,
            "slice": job.slice_id,
            "entities": dict(job.entities),
            "params": dict(self.spec.params),
            "outputs": list(job.outputs),
            "records": [dict(r.to_doc()) for r in records],
        }

    def _failure(self, result: ExecResult, job: PlannedJob, output: Path, logs_key: str) -> str | None:
        where = f"; logs: rollerblade logs {job.key[:12]} ({logs_key})"
        if result.error:
            return result.error + where
        if result.interrupted:
            return "interrupted; run again to finish" + where
        if result.oom_killed:
            return f"killed: out of memory (limit {self.spec.resources.memory >> 20} MiB){where}"
        if result.timed_out:
            return f"killed: timed out after {self.spec.resources.timeout:g} s{where}"
        if result.exit_code != 0:
            return f"exited with code {result.exit_code}{where}"
        problems = check_outputs(output, job.outputs)
        return "; ".join(problems) + where if problems else None

    def _commit(
        self, job: PlannedJob, records: list[ScanRecord], output: Path, result: ExecResult, logs_key: str
    ) -> None:
        prefix = layout.derivative_prefix(self.spec.name, job.dataset)
        provenance = {
            "Sources": [f"bids:{job.dataset}:{r.path}" for r in records],
            "RollerbladeJob": job.key,
            "ImageDigest": self.doc["image_digest"],
            "AnalysisVersion": self.spec.version,
            "Params": dict(self.spec.params),
            "StartTime": result.started,
            "EndTime": result.ended,
            "ExitCode": result.exit_code,
            "Logs": logs_key,
        }
        written: dict[str, bytes | Path] = {}
        for path in job.outputs:
            written[path] = output / path
        for path in job.outputs:
            if path.endswith(".json"):
                continue
            sidecar = _sidecar_of(path)
            existing = json.loads((output / sidecar).read_text()) if sidecar in job.outputs else {}
            written[sidecar] = json.dumps({**existing, **provenance}, indent=2).encode()
        written["dataset_description.json"] = json.dumps(self._description(job), indent=2).encode()
        events = []
        for path, content in sorted(written.items()):
            key = prefix + path
            info = (
                self.storage.put_bytes(key=key, data=content)
                if isinstance(content, bytes)
                else self.storage.put_file(key=key, source=str(content))
            )
            events.append(ObjectEvent("created", info.key, info.generation))
        for event in events:
            self.bus.publish(topic=OBJECTS_TOPIC, message=event.to_message())

    def _description(self, job: PlannedJob) -> dict[str, Any]:
        return {
            "Name": f"{self.spec.name} derivatives of {job.dataset}",
            "BIDSVersion": vocabulary().bids_version,
            "DatasetType": "derivative",
            "GeneratedBy": [
                {
                    "Name": self.spec.name,
                    "Version": self.spec.version,
                    "Container": {"Type": self.executor.name, "Tag": self.doc["image_digest"]},
                }
            ],
            "SourceDatasets": [{"URL": f"bids:{job.dataset}"}],
        }


#: ``{sub}``-style placeholders in a command; unknown ones (``{input}``, ``{}``) stay as written.
_PLACEHOLDER = re.compile(r"\{([A-Za-z_]+)\}")


def _sidecar_of(path: str) -> str:
    name = path.rsplit("/", 1)[-1]
    stem = name.split(".", 1)[0]
    folder = path[: -len(name)]
    return f"{folder}{stem}.json"


def check_outputs(output: Path, declared: tuple[str, ...]) -> list[str]:
    """Problems with what a job wrote: symlinks, undeclared files, missing declared files."""
    problems: list[str] = []
    found: set[str] = set()
    for dirpath, dirnames, filenames in os.walk(output):
        for name in dirnames + filenames:
            full = Path(dirpath, name)
            rel = full.relative_to(output).as_posix()
            if full.is_symlink():
                problems.append(f"output {rel} is a symlink (not allowed)")
            elif name in filenames:
                found.add(rel)
    extra = sorted(found - set(declared) - {"dataset_description.json"})
    if extra:
        problems.append(f"undeclared output(s): {', '.join(extra[:5])}" + (" ..." if len(extra) > 5 else ""))
    missing = [p for p in declared if p not in found]
    if missing:
        problems.append(f"declared output(s) missing: {', '.join(missing)}")
    return problems
