"""``run_analysis``: run a registered Analysis over every slice a query selects.

It plans the jobs (pure: :func:`rollerblade.analyses.jobs.plan_jobs`), queues those whose
key did not succeed yet (:func:`~rollerblade.pipeline.jobflow.queue_jobs`), then waits
for their completion *events*: it runs the event loop itself
(:class:`~rollerblade.pipeline.worker.Worker`, within the machine's CPU and memory
budget), or, when ``rollerblade serve`` already runs it for this store, watches the
jobs' states until they finish. Every job goes through the same handlers as a job a
pipeline rule planned: the executor stages its slice, ``on_job_ended`` checks the
outputs and commits them with provenance to ``derivatives/<analysis>/<dataset>/``.
A failed job commits nothing. An interrupted run leaves its jobs queued; running
again (or ``serve``) finishes exactly those.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Collection
from pathlib import Path

from rollerblade.analyses.jobs import JobRecord, PlannedJob
from rollerblade.analyses.spec import AnalysisSpec
from rollerblade.errors import InputError
from rollerblade.pipeline.analyses import get_analysis
from rollerblade.pipeline.jobflow import queue_run
from rollerblade.pipeline.services import Services
from rollerblade.pipeline.store_lock import exclusive_run
from rollerblade.pipeline.worker import Machine, Worker
from rollerblade.ports import EventBus, Executor, Index, Storage
from rollerblade.records import Actor

Progress = Callable[[JobRecord], None]

__all__ = ["Machine", "RunReport", "budget", "exclusive_run", "queue_run", "run_analysis"]


@dataclasses.dataclass
class RunReport:
    analysis: str
    planned: list[PlannedJob]
    skipped: list[str] = dataclasses.field(default_factory=list)
    succeeded: list[str] = dataclasses.field(default_factory=list)
    failed: list[JobRecord] = dataclasses.field(default_factory=list)
    parallel: int | None = 1  # None: no limit of the run's own (a cluster's in-flight limits apply)


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
    services: Services | None = None,
    within: Collection[str] | None = None,
) -> RunReport:
    services = services or Services(
        storage=storage, index=index, bus=bus, executor_name=executor.name, _executor=executor
    )
    machine = machine or Machine.this()
    spec, _ = get_analysis(name, index=services.catalog)
    # a cluster: as many at once as the in-flight limits allow
    parallel = budget(spec, parallel, machine) if executor.local else parallel or services.max_jobs or None
    spec, queued = queue_run(services, name, query, actor=actor, force=force, dry_run=dry_run, within=within)
    report = RunReport(analysis=name, planned=queued.planned, skipped=list(queued.done), parallel=parallel)
    for key in queued.problems:
        job = services.jobs.get_job(key=key)
        if job is not None:
            report.failed.append(job)
    if on_plan is not None:
        on_plan(report)
    waiting = [k for k in queued.queued + queued.busy if k not in queued.problems]
    if dry_run or not waiting:
        return report
    pending = dict.fromkeys(waiting)

    def settled() -> bool:
        for key in list(pending):
            job = services.jobs.get_job(key=key)
            if job is None or job.state not in ("succeeded", "failed"):
                continue
            del pending[key]
            if job.state == "succeeded":
                report.succeeded.append(key)
            else:
                report.failed.append(job)
            if progress is not None:
                progress(job)
        return not pending

    with exclusive_run(workdir, wait_for_serve=True) as owner:
        if owner:
            worker = Worker(services, actor=actor, machine=machine, slots=parallel)
            worker.start()
            worker.run(until=settled, idle_sleep=0.1)
        else:  # ``serve`` runs this store's jobs: watch their states
            while not settled():
                time.sleep(0.25)
    return report
