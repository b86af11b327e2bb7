"""The life of a job, one handler per step; every step is safe to run twice, at once, late.

::

    queue_jobs ──job.queued──► submit_job ──executor──► job.ended ──► on_job_ended
                                                                         │ commit, index, tag
                                                    job.succeeded / job.failed ◄┘ (or a retry: job.queued)

* :func:`queue_jobs` plans jobs (pure planning, :func:`~rollerblade.analyses.jobs.plan_jobs`)
  and creates each job record only if its key is new (``create_job`` is atomic). A job
  whose key already succeeded is never queued again; one still waiting is announced again
  (a duplicate ``job.queued`` is harmless).
* :func:`submit_job` moves a job ``planned -> running`` with a compare-and-set on
  (state, attempts), so of two deliveries exactly one submits. The slice goes to the
  executor as storage keys (:class:`~rollerblade.pipeline.download.SlicePlan`).
* :func:`~rollerblade.pipeline.completion.on_job_ended` (its own module) handles the
  executor's ``job.ended``: commit, index, tag, then ``job.succeeded``; or retry / fail.
* :func:`queue_run` is what ``run``, ``rerun`` and the rerun message share.
* :func:`collect` publishes the executor's ends; :func:`reconcile` turns jobs
  ``running`` that no executor knows into ``lost`` ends.
"""

from __future__ import annotations

import dataclasses
import datetime
import json
import logging
import re
import secrets
import time
from collections.abc import Collection, Iterable, Mapping, Sequence
from typing import Any

from rollerblade.analyses.jobs import InputLines, JobEnded, JobRecord, PlannedJob, output_prefix, plan_jobs
from rollerblade.analyses.spec import AnalysisSpec
from rollerblade.errors import InputError, NotFound, TemporaryError
from rollerblade.pipeline.analyses import get_analysis
from rollerblade.pipeline.download import SlicePlan, write_selection
from rollerblade.pipeline.events import publish_all
from rollerblade.pipeline.messages import (
    JOBS_TOPIC,
    QUEUE_TOPIC,
    JobQueued,
)
from rollerblade.pipeline.querying import compile_query
from rollerblade.pipeline.services import Services
from rollerblade.ports import Index, JobSpec
from rollerblade.query import ast
from rollerblade.query.parser import parse_query
from rollerblade.records import Actor, ScanRecord
from rollerblade.rules.engine import usable

log = logging.getLogger(__name__)


def _now() -> str:
    return datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")


# -- planning ------------------------------------------------------------------------


@dataclasses.dataclass
class QueueReport:
    planned: list[PlannedJob] = dataclasses.field(default_factory=list)
    queued: list[str] = dataclasses.field(default_factory=list)  # announced (new or still waiting)
    done: list[str] = dataclasses.field(default_factory=list)  # already succeeded: not run again
    busy: list[str] = dataclasses.field(default_factory=list)  # running or failed for good
    problems: list[str] = dataclasses.field(default_factory=list)  # cannot run (recorded failed)


@dataclasses.dataclass(frozen=True)
class JobRequest:
    """Plan ``spec`` over ``records`` (as ``rule`` asks; ``salt``: a forced rerun)."""

    spec: AnalysisSpec
    doc: Mapping[str, Any]
    records: Sequence[ScanRecord]
    rule: str = ""
    salt: str = ""


def queue_jobs(
    services: Services,
    spec: AnalysisSpec,
    doc: Mapping[str, Any],
    records: Iterable[ScanRecord],
    *,
    actor: Actor,
    rule: str = "",
    salt: str = "",
    dry_run: bool = False,
) -> QueueReport:
    """Plan the jobs of ``records`` and queue those whose key is new (or still waiting)."""
    request = JobRequest(spec, doc, list(records), rule, salt)
    return queue_many(services, [request], actor=actor, dry_run=dry_run)[0]


def queue_many(
    services: Services, requests: Sequence[JobRequest], *, actor: Actor, dry_run: bool = False
) -> list[QueueReport]:
    """:func:`queue_jobs` for many requests at once: the new job records are created in one
    write and the ``job.queued`` events published in one call."""
    jobs = services.jobs
    reports: list[QueueReport] = []
    planned: list[tuple[QueueReport, PlannedJob]] = []
    records: dict[str, JobRecord] = {}  # key -> the job record to create: the first request's
    inputs = InputLines()
    plans: dict[tuple[int, str, str, tuple[int, ...]], list[PlannedJob]] = {}  # one plan per identical request
    for request in requests:
        _, digest = services.image_of(request.doc)
        same = (id(request.spec), digest, request.salt, tuple(map(id, request.records)))
        if same not in plans:
            plans[same] = plan_jobs(request.spec, digest, request.records, request.salt, inputs=inputs)
        report = QueueReport(planned=list(plans[same]))
        reports.append(report)
        for job in report.planned:
            planned.append((report, job))
            if job.key not in records:
                records[job.key] = _job_record(request.spec, digest, job, actor, request.rule)
    existing = jobs.get_jobs(keys=list(records))
    fresh = [rec for key, rec in records.items() if key not in existing]
    won: set[str] = set()
    if fresh and not dry_run:
        created = jobs.create_jobs(jobs=fresh)
        won = {rec.key for rec, ok in zip(fresh, created, strict=True) if ok}
    announce: dict[str, None] = {}
    for report, job in planned:
        if job.problem:  # recorded failed with the reason; never queued
            report.problems.append(job.key)
            continue
        if job.key in won:  # created by this call (a key two requests share: planned by the first)
            report.queued.append(job.key)
            announce[job.key] = None
            continue
        current = existing.get(job.key) if job.key in existing or dry_run else jobs.get_job(key=job.key)
        if current is None:  # a dry run: it would be queued
            report.queued.append(job.key)
        elif current.state == "succeeded":
            report.done.append(job.key)
        elif current.state == "planned":
            report.queued.append(job.key)
            announce[job.key] = None
        else:
            report.busy.append(job.key)
    if announce:
        publish_all(services.bus, [JobQueued(k).to_message() for k in announce], topic=QUEUE_TOPIC)
    return reports


def selection(spec: AnalysisSpec, query: str, *, index: Index, within: Collection[str] | None = None) -> ast.Node:
    """The records an Analysis would run on: its input query AND ``query``, among the
    datasets ``within`` (None: all of them; fields are checked against theirs only)."""
    node = ast.And((parse_query(spec.input), compile_query(query, index=index, datasets=within)))
    if within is not None:
        node = ast.And((ast.one_of("dataset", sorted(within)), node))
    return usable(node)


def queue_run(
    services: Services,
    name: str,
    query: str,
    *,
    actor: Actor,
    force: bool = False,
    dry_run: bool = False,
    within: Collection[str] | None = None,
) -> tuple[AnalysisSpec, QueueReport]:
    """Plan ``name`` over what ``query`` selects and queue what must run: jobs whose key
    is new, and (a person asked again) jobs that failed for good. ``force`` salts the
    keys, so identical inputs run again. What a rerun message and ``run`` share.
    ``within``: only these datasets (those the requesting principal may read)."""
    spec, doc = get_analysis(name, index=services.catalog)
    records = (
        []
        if within is not None and not within
        else list(services.index.query(node=selection(spec, query, index=services.index, within=within)))
    )
    salt = secrets.token_hex(8) if force else ""
    report = queue_jobs(services, spec, doc, records, actor=actor, salt=salt, dry_run=dry_run)
    if not dry_run:
        busy = [services.jobs.get_job(key=key) for key in report.busy]
        failed = [job for job in busy if job is not None and job.state == "failed"]
        requeue(services, failed, why="queued again by a run")
    return spec, report


def requeue(services: Services, jobs: Collection[JobRecord], *, why: str) -> list[JobRecord]:
    """Queue failed jobs again (a person asked); returns those this call moved back to
    ``planned`` (a concurrent request may have done it first)."""
    again = []
    for job in jobs:
        retry = dataclasses.replace(job, state="planned", message=why, updated=time.time())
        if services.jobs.swap_job(job=retry, state="failed", attempts=job.attempts):
            again.append(retry)
    if again:
        publish_all(services.bus, [JobQueued(j.key).to_message() for j in again], topic=QUEUE_TOPIC)
    return again


def _job_record(spec: AnalysisSpec, digest: str, job: PlannedJob, actor: Actor, rule: str) -> JobRecord:
    return JobRecord(
        key=job.key,
        analysis=spec.name,
        version=spec.version,
        dataset=job.dataset,
        slice_id=job.slice_id,
        state="failed" if job.problem else "planned",
        image_digest=digest,
        params=dict(spec.params),
        sources=job.sources,
        outputs=job.outputs,
        actor=actor,
        rule=rule,
        message=job.problem or "",
        updated=time.time(),
    )


# -- submission ----------------------------------------------------------------------

#: ``{sub}``-style placeholders in a command; unknown ones (``{input}``, ``{}``) stay as written.
_PLACEHOLDER = re.compile(r"\{([A-Za-z_]+)\}")


def submit_job(services: Services, key: str, *, actor: Actor) -> JobRecord | None:
    """Move a planned job to ``running`` and hand it to the executor; None when it was not
    planned any more (another delivery submitted it, or it finished)."""
    index = services.index
    job = services.jobs.get_job(key=key)
    if job is None or job.state != "planned":
        return None
    attempt = job.attempts + 1
    running = dataclasses.replace(
        job, state="running", attempts=attempt, started=_now(), ended=None, exit_code=None, updated=time.time()
    )
    if not services.jobs.swap_job(job=running, state="planned", attempts=job.attempts):
        return None
    try:
        spec, doc = get_analysis(job.analysis, index=services.catalog)
        records = [index.get_record(dataset=job.dataset, path=p) for p in job.sources]
        missing = [p for p, r in zip(job.sources, records, strict=True) if r is None]
        if missing:
            raise NotFound("source record", f"{job.dataset}/{missing[0]} (deleted while the job was queued)")
        present = [r for r in records if r is not None]
        plan = SlicePlan(services.storage)
        write_selection(services.storage, index, job.dataset, present, plan)
        slice_doc = _slice_doc(job, spec, present)
        plan.files[".rollerblade/slice.json"] = json.dumps(slice_doc, indent=2).encode()
        image, _ = services.image_of(doc)
    except Exception as e:  # nothing to run: this attempt ends in error, handled like any end
        ended = JobEnded(key, attempt, "error", message=f"cannot stage the job: {e}")
        services.bus.publish(topic=JOBS_TOPIC, message=ended.to_message())
        return running
    values = {**slice_doc["entities"], "dataset": job.dataset}
    command = tuple(_PLACEHOLDER.sub(lambda m: values.get(m.group(1), m.group(0)), p) for p in spec.command)
    res = spec.resources
    job_spec = JobSpec(
        job_key=key,
        attempt=attempt,
        image=image,
        command=command,
        inputs=plan.inputs,
        files=plan.files,
        output_prefix=output_prefix(key, attempt),
        log_key=logs_key(job),
        env={
            "ROLLERBLADE_INPUT": "/input",
            "ROLLERBLADE_OUTPUT": "/output",
            "ROLLERBLADE_SLICE_FILE": "/input/.rollerblade/slice.json",
            "ROLLERBLADE_SLICE": json.dumps(slice_doc),
            "ROLLERBLADE_PARAMS": json.dumps(dict(job.params)),
        },
        cpu=res.cpu,
        memory=res.memory,
        timeout=res.timeout,
        gpu=res.gpu,
        accelerator=res.accelerator,
        spot=res.spot,
        disk=res.disk,
        labels={"analysis": job.analysis, "dataset": job.dataset},
    )
    try:
        notes = services.executor.check(spec=job_spec)
    except InputError as e:  # e.g. more than GKE Autopilot allows: ends in error, with the reason
        ended = JobEnded(key, attempt, "error", message=f"{services.executor.name} refuses the job: {e}")
        services.bus.publish(topic=JOBS_TOPIC, message=ended.to_message())
        return running
    if notes:  # e.g. requests rounded up to what Autopilot provisions: said in the job record
        noted = dataclasses.replace(running, message="; ".join(notes), updated=time.time())
        if services.jobs.swap_job(job=noted, state="running", attempts=attempt):
            running = noted
    try:
        services.executor.submit(spec=job_spec)
    except TemporaryError:  # e.g. the cluster's quota is used up: planned again, retried later
        services.jobs.swap_job(job=dataclasses.replace(job, updated=time.time()), state="running", attempts=attempt)
        raise
    return running


def admit_waiting(services: Services) -> int:
    """Announce planned jobs, oldest first, while there is room under ``services.max_jobs``;
    returns how many. A job over the limits waits as a ``planned`` record (its
    ``job.queued`` is acknowledged: redelivering it would only use up the message's
    delivery attempts and dead-letter it); each job end and the watcher's periodic pass
    call this, so the backlog moves as room frees. Announcing twice is harmless."""
    planned = services.jobs.jobs(state="planned")
    if not planned:
        return 0
    room = len(planned)
    if services.max_jobs:
        room = min(room, services.max_jobs - len(services.jobs.jobs(state="running")))
    if room <= 0:
        return 0
    oldest = sorted(planned, key=lambda j: j.updated)[:room]
    publish_all(services.bus, [JobQueued(j.key).to_message() for j in oldest], topic=QUEUE_TOPIC)
    return len(oldest)


def in_flight_limit(services: Services, analysis: str, spec: AnalysisSpec) -> str | None:
    """Why a job of ``analysis`` must wait before it is submitted (None: it may go): the
    total of jobs in flight is at ``services.max_jobs``, or this Analysis's own
    ``resources.max_in_flight``. Counted from the index, so every instance sees the same
    count; instances deciding at the same instant may overshoot by their number."""
    if services.max_jobs:
        running = len(services.jobs.jobs(state="running"))
        if running >= services.max_jobs:
            return f"{running} jobs in flight (limit {services.max_jobs})"
    cap = spec.resources.max_in_flight
    if cap:
        mine = len(services.jobs.jobs(analysis=analysis, state="running"))
        if mine >= cap:
            return f"{mine} jobs of {analysis} in flight (its limit {cap})"
    return None


def logs_key(job: JobRecord) -> str:
    return f"logs/{job.analysis}/{job.key}.log"


def _slice_doc(job: JobRecord, spec: AnalysisSpec, records: list[ScanRecord]) -> dict[str, Any]:
    shared = dict(records[0].entities) if records else {}
    for other in records[1:]:
        shared = {k: v for k, v in shared.items() if other.entities.get(k) == v}
    return {
        "analysis": job.analysis,
        "version": job.version,
        "job_key": job.key,
        "dataset": job.dataset,
        "slice": job.slice_id,
        "entities": shared,
        "params": dict(job.params),
        "outputs": list(job.outputs),
        "records": [dict(r.to_doc()) for r in records],
    }


# -- reconciliation ------------------------------------------------------------------


def collect(services: Services) -> int:
    """Publish the executor's ended attempts as ``job.ended`` events, then release them."""
    ended = services.executor.finished()
    if ended:
        publish_all(services.bus, [e.to_message() for e in ended], topic=JOBS_TOPIC)
        services.executor.release(keys=[e.key for e in ended])
    return len(ended)


def reconcile(services: Services, *, older_than: float) -> int:
    """Jobs ``running`` for longer than ``older_than`` seconds that the executor does not
    know (a restart, a container gone): publish a ``lost`` end for each; returns how many."""
    alive = services.executor.active()
    cutoff = time.time() - older_than
    lost = [
        JobEnded(job.key, job.attempts, "lost", message="the executor lost the job (restart or container gone)")
        for job in services.jobs.jobs(state="running")
        if job.key not in alive and job.updated <= cutoff
    ]
    if lost:
        publish_all(services.bus, [e.to_message() for e in lost], topic=JOBS_TOPIC)
    return len(lost)
