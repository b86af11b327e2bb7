"""The analysis use cases as a principal performs them: Analyses, runs, jobs, logs,
pipeline rules and tags.

Like ``usecases_data``, the only way entry points reach these operations. Running
Analysis A needs ``run`` on A; its selection is narrowed to the datasets the principal
may read (so a run never reveals, by its job count, what a private dataset holds).
Jobs, logs and tags are shown only for readable datasets. Rules are applied by admins or
by the managers of every Analysis they run, and then fire with their applier's rights.
"""

from __future__ import annotations

import collections
import dataclasses
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from rollerblade.access.model import MANAGE, Principal
from rollerblade.analyses.jobs import JobRecord
from rollerblade.analyses.spec import AnalysisSpec, load_spec
from rollerblade.errors import InputError, NotFound
from rollerblade.pipeline import analyses, automation, jobflow, running, sharing
from rollerblade.pipeline.messages import TOPICS
from rollerblade.pipeline.services import Services
from rollerblade.pipeline.worker import topic_depths
from rollerblade.query import ast
from rollerblade.records import Actor, ScanRecord
from rollerblade.rules.model import Rule, load_rule_files

RunReport = running.RunReport


def list_analyses(services: Services, principal: Principal) -> list[dict[str, Any]]:
    """The registered Analyses the principal may run."""
    runnable = services.guard.holding(principal, "analysis", "run")
    return [doc for doc in services.catalog.analyses() if runnable is None or doc["name"] in runnable]


def get_analysis(services: Services, principal: Principal, name: str) -> tuple[AnalysisSpec, dict[str, Any]]:
    spec, doc = analyses.get_analysis(name, index=services.catalog)
    services.guard.require(principal, "analysis", name, "run", action="analysis-show")
    return spec, doc


def register_analysis(services: Services, principal: Principal, folder: Path) -> dict[str, Any]:
    """Register a new Analysis (its registrant manages it) or a new version (managers only)."""
    spec = load_spec(folder / "analysis.yaml")
    if services.catalog.get_analysis(name=spec.name) is not None:
        services.guard.require(principal, "analysis", spec.name, MANAGE, action="register")
    elif principal.kind != "user":
        services.guard.require_admin(principal, action="register")
    doc = analyses.register_analysis(
        folder, index=services.index, executor=services.executor, actor=Actor(principal.name)
    )
    sharing.claim(services, principal, "analysis", spec.name)
    services.guard.record(principal, "register", "analysis", spec.name, f"version {spec.version}")
    return doc


def run_analysis(
    services: Services,
    principal: Principal,
    name: str,
    query: str,
    *,
    workdir: Path,
    parallel: int | None = None,
    force: bool = False,
    dry_run: bool = False,
    progress: Callable[[JobRecord], None] | None = None,
    on_plan: Callable[[running.RunReport], None] | None = None,
) -> running.RunReport:
    """Run ``name`` over the readable records ``query`` selects and wait for every job."""
    services.guard.require(principal, "analysis", name, "run", action="run")
    if not dry_run:
        services.guard.record(principal, "run", "analysis", name, query)
    return running.run_analysis(
        name,
        query,
        storage=services.storage,
        index=services.index,
        bus=services.bus,
        executor=services.executor,
        actor=Actor(principal.name),
        workdir=workdir,
        parallel=parallel,
        force=force,
        dry_run=dry_run,
        progress=progress,
        on_plan=on_plan,
        services=services,
        within=services.guard.readable(principal),
    )


def start_run(
    services: Services, principal: Principal, name: str, query: str, *, force: bool = False, dry_run: bool = False
) -> jobflow.QueueReport:
    """Queue ``name`` over the readable records ``query`` selects and return at once (the
    event loop or the deployment runs the jobs; :func:`run_progress` follows them)."""
    services.guard.require(principal, "analysis", name, "run", action="run")
    within = services.guard.readable(principal)
    _, report = jobflow.queue_run(
        services, name, query, actor=Actor(principal.name), force=force, dry_run=dry_run, within=within
    )
    if not dry_run:
        services.guard.record(principal, "run", "analysis", name, f"{query} ({len(report.planned)} jobs queued)")
    return report


def list_jobs(
    services: Services, principal: Principal, *, analysis: str | None = None, state: str | None = None
) -> list[JobRecord]:
    """Jobs on datasets the principal may read, newest first."""
    readable = services.guard.readable(principal)
    return [
        job for job in services.jobs.jobs(analysis=analysis, state=state) if readable is None or job.dataset in readable
    ]


def run_progress(services: Services, principal: Principal, analysis: str) -> dict[str, int]:
    """How many of the Analysis's (readable) jobs are in each state."""
    services.guard.require(principal, "analysis", analysis, "run", action="run-progress")
    counts = collections.Counter(job.state for job in list_jobs(services, principal, analysis=analysis))
    return {state: counts.get(state, 0) for state in ("planned", "running", "succeeded", "failed")}


def cancel_run(services: Services, principal: Principal, analysis: str) -> int:
    """End the Analysis's queued (not yet running) jobs on readable datasets as failed,
    "cancelled by ...": running jobs finish. Returns how many were cancelled."""
    services.guard.require(principal, "analysis", analysis, "run", action="run-cancel")
    cancelled = 0
    for job in list_jobs(services, principal, analysis=analysis, state="planned"):
        ended = dataclasses.replace(job, state="failed", message=f"cancelled by {principal.name}", updated=time.time())
        if services.jobs.swap_job(job=ended, state="planned", attempts=job.attempts):
            cancelled += 1
    services.guard.record(principal, "run-cancel", "analysis", analysis, f"{cancelled} queued jobs")
    return cancelled


def get_job(services: Services, principal: Principal, key: str) -> JobRecord:
    """One job by its key or a unique prefix of it, if its dataset is readable."""
    matches = [j for j in list_jobs(services, principal) if j.key.startswith(key)]
    if len(matches) != 1:
        raise NotFound("job", key if not matches else f"{key} (ambiguous: {len(matches)} jobs match)")
    return matches[0]


def retry_job(services: Services, principal: Principal, key: str) -> JobRecord:
    """Queue a failed job again (``run`` on its Analysis, ``read`` on its dataset)."""
    job = get_job(services, principal, key)
    services.guard.require(principal, "analysis", job.analysis, "run", action="job-retry")
    if job.state != "failed":
        raise InputError(f"job {job.key[:12]} is {job.state}: only a failed job can be retried")
    again = jobflow.requeue(services, [job], why=f"retried by {principal.name}")
    services.guard.record(principal, "job-retry", "analysis", job.analysis, job.key)
    return again[0] if again else get_job(services, principal, job.key)


def job_logs(services: Services, principal: Principal, key: str) -> bytes:
    job = get_job(services, principal, key)
    if not job.logs_key:
        raise NotFound("logs of job", job.key)
    return services.storage.read(key=job.logs_key)


def tagged(services: Services, principal: Principal, tag: str, *, limit: int | None = None) -> list[ScanRecord]:
    """Readable derivatives carrying ``tag`` (e.g. ``final``)."""
    node = services.guard.scope(principal, ast.has_tag(tag))
    return [] if node is None else list(services.index.query(node=node, limit=limit))


# -- rules ---------------------------------------------------------------------------


def apply_rules(services: Services, principal: Principal, folder: Path) -> tuple[list[Rule], int]:
    """Make the rule files of ``folder`` the rules in force (for admins, and for users who
    manage every Analysis the rules run); then ask for every dataset to be evaluated.
    Returns the rules and how many datasets were queued for evaluation."""
    if not principal.unrestricted:
        rules = load_rule_files(folder)
        names = {r.run.analysis for r in rules if r.run is not None}
        services.guard.require_each(principal, "analysis", names, MANAGE, action="rules-apply")
    applied = automation.apply_rules(services, folder, actor=Actor(principal.name))
    services.guard.record(principal, "rules-apply", "rules", str(folder), f"{len(applied)} rules")
    return applied, automation.evaluate_everything(services)


def list_rules(services: Services, principal: Principal) -> list[Rule]:
    sharing.require_signed_in(services, principal, "rules-list")
    return automation.current_rules(services)


def get_rule(services: Services, principal: Principal, name: str) -> Rule:
    sharing.require_signed_in(services, principal, "rules-show")
    return automation.get_rule(services, name)


def explain(services: Services, principal: Principal, dataset: str, path: str) -> list[dict[str, Any]]:
    services.guard.require(principal, "dataset", dataset, "read", action="rules-explain")
    return automation.explain(services, dataset, path)


# -- the pipeline's state (admins) ---------------------------------------------------


def pipeline_status(services: Services, principal: Principal) -> dict[str, Any]:
    """Queue depths, jobs by state, the last five failures, the dead letters and, on a
    cluster, what it holds right now (every dataset's jobs: admins only)."""
    sharing.require_admin(services, principal, "status")
    jobs = services.jobs.jobs()
    bus: Any = services.bus
    doc: dict[str, Any] = {
        "queues": topic_depths(services),
        "jobs": dict(collections.Counter(j.state for j in jobs)),
        "last_failures": [
            {"key": j.key, "analysis": j.analysis, "slice": f"{j.dataset}/{j.slice_id}", "message": j.message}
            for j in [j for j in jobs if j.state == "failed"][:5]
        ],
        "dead_letters": {
            t: [{"id": i, "message": m, "error": e} for i, m, e in bus.dead_letters(topic=t)]
            for t in TOPICS
            if hasattr(bus, "dead_letters")
        },
    }
    executor = services.executor
    if not executor.local:  # a cluster: what it holds right now
        counts = getattr(executor, "counts", None)
        try:
            doc["cluster"] = counts() if counts is not None else {}
        except Exception as e:  # noqa: BLE001 - an unreachable cluster: say so, show the rest
            doc["cluster"] = {"error": str(e)}
    return doc


def retry_dead_letters(services: Services, principal: Principal, topic: str | None = None) -> int:
    """Deliver the dead-lettered messages of ``topic`` (None: every topic) again; how many."""
    sharing.require_admin(services, principal, "events-retry")
    bus: Any = services.bus
    if not hasattr(bus, "retry_dead"):
        raise InputError("this store's bus keeps no dead letters here (Pub/Sub: use its dead-letter topics)")
    return sum(int(bus.retry_dead(topic=t)) for t in ([topic] if topic else TOPICS))
