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
* :func:`on_job_ended` handles the executor's ``job.ended``: it checks the outputs,
  commits them with provenance to ``derivatives/<analysis>/<dataset>/``, indexes them,
  applies the pipeline rules' tags, and only then records the job ``succeeded`` (again a
  compare-and-set) and publishes ``job.succeeded``. A failure is retried while the
  Analysis's ``retries`` allow, then recorded ``failed`` (``job.failed``); a job the
  executor lost or a shutdown interrupted is queued again without counting a try.
* :func:`reconcile` turns jobs ``running`` that no executor knows into ``lost`` ends.
"""

from __future__ import annotations

import dataclasses
import datetime
import json
import logging
import re
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

from rollerblade.abids import layout
from rollerblade.abids.schema import vocabulary
from rollerblade.analyses.jobs import TAGS_KEY, JobEnded, JobRecord, PlannedJob, output_prefix, plan_jobs
from rollerblade.analyses.spec import AnalysisSpec
from rollerblade.errors import NotFound
from rollerblade.pipeline.analyses import get_analysis
from rollerblade.pipeline.batch_indexing import index_objects
from rollerblade.pipeline.download import SlicePlan, write_selection
from rollerblade.pipeline.events import announce, publish_all
from rollerblade.pipeline.messages import (
    JOBS_TOPIC,
    QUEUE_TOPIC,
    RESULTS_TOPIC,
    JobQueued,
    JobResult,
)
from rollerblade.ports import EventBus, Executor, Index, JobSpec, Storage
from rollerblade.query import ast
from rollerblade.query.evaluate import matches
from rollerblade.query.fields import flatten
from rollerblade.records import Actor, ObjectEvent, ScanRecord

log = logging.getLogger(__name__)

#: Times a job may be lost by its executor (or interrupted by shutdowns) before it fails.
MAX_LOST = 5


@dataclasses.dataclass
class Services:
    """The bundle every use case takes: the ports, and the executor made on first use."""

    storage: Storage
    index: Index
    bus: EventBus
    executor_name: str = "docker"
    make_executor: Callable[[], Executor] | None = None
    _executor: Executor | None = None
    _digests: dict[str, str] = dataclasses.field(default_factory=dict)

    @property
    def executor(self) -> Executor:
        if self._executor is None:
            if self.make_executor is None:
                raise RuntimeError("these services have no executor")
            self._executor = self.make_executor()
        return self._executor

    def image_of(self, doc: Mapping[str, Any]) -> tuple[str, str]:
        """(what the executor runs, its digest) for a registered Analysis: the job key is
        made from what actually runs, so the process executor keys jobs with the folder's
        digest, not the Docker image's."""
        if self.executor_name == doc.get("executor", "docker"):
            digest = str(doc["image_digest"])
        else:
            folder = str(doc["folder"])
            if folder not in self._digests:
                spec = AnalysisSpec.from_doc(doc["spec"])
                self._digests[folder] = self.executor.prepare(
                    folder=folder,
                    image_build=spec.image.build,
                    image_ref=spec.image.ref,
                    tag=f"rollerblade/{spec.name}:{spec.version}",
                )
            digest = self._digests[folder]
        image = digest if self.executor_name != "process" else str(doc["folder"])
        return image, digest


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
    index = services.index
    reports: list[QueueReport] = []
    planned: list[tuple[QueueReport, PlannedJob, JobRecord]] = []
    for request in requests:
        _, digest = services.image_of(request.doc)
        report = QueueReport(planned=plan_jobs(request.spec, digest, request.records, request.salt))
        reports.append(report)
        planned += [(report, j, _job_record(request.spec, digest, j, actor, request.rule)) for j in report.planned]
    known = index.get_jobs(keys=[job.key for _, job, _ in planned])
    existing = {job.key: known.get(job.key) for _, job, _ in planned}
    fresh = [(r, j, rec) for r, j, rec in planned if existing[j.key] is None]
    won: set[str] = set()
    if fresh and not dry_run:
        created = index.create_jobs(jobs=[rec for _, _, rec in fresh])
        won = {rec.key for (_, _, rec), ok in zip(fresh, created, strict=True) if ok}
    announce: dict[str, None] = {}
    for report, job, _ in planned:
        if job.problem:  # recorded failed with the reason; never queued
            report.problems.append(job.key)
            continue
        if job.key in won:
            won.discard(job.key)  # a key two requests share: the second finds it existing
            report.queued.append(job.key)
            announce[job.key] = None
            continue
        current = existing[job.key] if existing[job.key] is not None or dry_run else index.get_job(key=job.key)
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
    job = index.get_job(key=key)
    if job is None or job.state != "planned":
        return None
    attempt = job.attempts + 1
    running = dataclasses.replace(
        job, state="running", attempts=attempt, started=_now(), ended=None, exit_code=None, updated=time.time()
    )
    if not index.swap_job(job=running, state="planned", attempts=job.attempts):
        return None
    try:
        spec, doc = get_analysis(job.analysis, index=index)
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
    services.executor.submit(
        spec=JobSpec(
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
        )
    )
    return running


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


# -- completion ----------------------------------------------------------------------

TagRules = Callable[[str], list[tuple[ast.Node, tuple[str, ...]]]]


def on_job_ended(services: Services, ended: JobEnded, *, actor: Actor, tag_rules: TagRules | None = None) -> str:
    """Handle one ``job.ended``; returns what it did (for logs and tests)."""
    index = services.index
    job = index.get_job(key=ended.key)
    if job is None:
        log.warning("job.ended for unknown job %s: ignored", ended.key[:12])
        return "unknown"
    if job.state != "running" or job.attempts != ended.attempt:
        if job.attempts == ended.attempt and job.state in ("succeeded", "failed"):
            # a redelivery after the state was written: announce the result again
            services.bus.publish(topic=RESULTS_TOPIC, message=_result(job).to_message())
        return "stale"
    try:
        spec: AnalysisSpec | None = get_analysis(job.analysis, index=index)[0]
    except NotFound:
        spec = None
    where = f"; logs: rollerblade logs {job.key[:12]} ({logs_key(job)})"
    problem = _problem(ended, job)
    if problem is None:
        gone = [p for p in job.sources if index.get_record(dataset=job.dataset, path=p) is None]
        if gone:  # a source deleted while the job ran: its derivatives must not appear
            problem = f"source {job.dataset}/{gone[0]} was deleted while the job ran; outputs discarded"
    prefix = output_prefix(job.key, ended.attempt)
    stamped = dataclasses.replace(
        job,
        started=ended.started,
        ended=ended.ended,
        exit_code=ended.exit_code,
        logs_key=logs_key(job),
        updated=time.time(),
    )
    if problem is None:
        tags = _commit(services, job, ended, actor=actor, tag_rules=tag_rules)
        final = dataclasses.replace(stamped, state="succeeded", message="", tags=tags)
        if index.swap_job(job=final, state="running", attempts=ended.attempt):
            services.bus.publish(topic=RESULTS_TOPIC, message=_result(final).to_message())
        _discard(services.storage, prefix)
        return "succeeded"
    message = problem + where
    counted = ended.attempt - job.lost
    retries = spec.retries if spec is not None else 0
    if ended.outcome in ("lost", "interrupted") and job.lost < MAX_LOST:
        following = dataclasses.replace(stamped, state="planned", lost=job.lost + 1, message=message)
    elif ended.outcome not in ("lost", "interrupted") and counted <= retries:
        note = f"attempt {counted} of {retries + 1} failed: {message}; retrying"
        following = dataclasses.replace(stamped, state="planned", message=note)
    else:
        following = dataclasses.replace(stamped, state="failed", message=message)
    if index.swap_job(job=following, state="running", attempts=ended.attempt):
        if following.state == "planned":
            services.bus.publish(topic=QUEUE_TOPIC, message=JobQueued(job.key).to_message())
        else:
            services.bus.publish(topic=RESULTS_TOPIC, message=_result(following).to_message())
    _discard(services.storage, prefix)
    return "retried" if following.state == "planned" else "failed"


def _result(job: JobRecord) -> JobResult:
    return JobResult(job.key, job.analysis, job.dataset, job.state == "succeeded")


def _problem(ended: JobEnded, job: JobRecord) -> str | None:
    if ended.outcome != "succeeded":
        return ended.message or ended.outcome
    problems = list(ended.problems)
    found = set(ended.outputs)
    extra = sorted(found - set(job.outputs) - {"dataset_description.json"})
    if extra:
        problems.append(f"undeclared output(s): {', '.join(extra[:5])}" + (" ..." if len(extra) > 5 else ""))
    missing = [p for p in job.outputs if p not in found]
    if missing:
        problems.append(f"declared output(s) missing: {', '.join(missing)}")
    return "; ".join(problems) if problems else None


def _discard(storage: Storage, prefix: str) -> None:
    for info in list(storage.list(prefix=prefix)):
        storage.delete(key=info.key)


def sidecar_of(path: str) -> str:
    name = path.rsplit("/", 1)[-1]
    stem = name.split(".", 1)[0]
    folder = path[: -len(name)]
    return f"{folder}{stem}.json"


def _commit(
    services: Services, job: JobRecord, ended: JobEnded, *, actor: Actor, tag_rules: TagRules | None
) -> tuple[str, ...]:
    """Store the outputs with provenance sidecars, index them, tag them; returns the tags."""
    storage = services.storage
    staged = output_prefix(job.key, ended.attempt)
    prefix = layout.derivative_prefix(job.analysis, job.dataset)
    provenance = {
        "Sources": [f"bids:{job.dataset}:{p}" for p in job.sources],
        "RollerbladeJob": job.key,
        "ImageDigest": job.image_digest,
        "AnalysisVersion": job.version,
        "Params": dict(job.params),
        "StartTime": ended.started,
        "EndTime": ended.ended,
        "ExitCode": ended.exit_code,
        "Logs": logs_key(job),
    }
    sidecars: dict[str, dict[str, Any]] = {}
    for path in job.outputs:
        if not path.endswith(".json"):
            sidecar = sidecar_of(path)
            existing = json.loads(storage.read(key=staged + sidecar)) if sidecar in job.outputs else {}
            sidecars[sidecar] = {**existing, **provenance}
    written: dict[str, bytes] = {p: storage.read(key=staged + p) for p in job.outputs if p not in sidecars}
    written["dataset_description.json"] = json.dumps(_description(job), indent=2).encode()

    def store(extra_tags: Mapping[str, tuple[str, ...]]) -> list[str]:
        keys = []
        for path, doc in sidecars.items():
            tagged = {**doc, TAGS_KEY: list(extra_tags[path])} if extra_tags.get(path) else doc
            keys.append(storage.put_bytes(key=prefix + path, data=json.dumps(tagged, indent=2).encode()).key)
        return keys

    keys = [storage.put_bytes(key=prefix + p, data=data).key for p, data in sorted(written.items())]
    keys += store({})
    outcomes = index_objects(
        [ObjectEvent("created", k) for k in keys], storage=storage, index=services.index, actor=actor
    )
    announce(services.bus, outcomes)
    rules = tag_rules(job.analysis) if tag_rules is not None else []
    if not rules:
        return ()
    by_sidecar: dict[str, tuple[str, ...]] = {}
    for path in job.outputs:
        record = services.index.get_record(dataset=job.dataset, path=f"derivatives/{job.analysis}/{path}")
        if record is None or path.endswith(".json"):
            continue
        flat = flatten(record)
        tags = tuple(sorted({t for node, names in rules if matches(node, flat) for t in names}))
        if tags:
            by_sidecar[sidecar_of(path)] = tags
    if not by_sidecar:
        return ()
    sidecar_keys = [k for k in store(by_sidecar) if k[len(prefix) :] in by_sidecar]
    outcomes = index_objects(
        [ObjectEvent("created", k) for k in sidecar_keys], storage=storage, index=services.index, actor=actor
    )
    announce(services.bus, outcomes)
    all_tags = tuple(sorted({t for tags in by_sidecar.values() for t in tags}))
    _supersede(services, job, all_tags, actor=actor)
    return all_tags


def _supersede(services: Services, job: JobRecord, tags: tuple[str, ...], *, actor: Actor) -> None:
    """Take ``tags`` off older derivatives of the same sources by the same Analysis: only
    the newest derivative of a source keeps ``final``."""
    node = ast.And(
        (
            ast.text_equals("dataset", job.dataset),
            ast.text_equals("analysis", job.analysis),
            ast.Or(tuple(ast.Exists(ast.Field(f"tags.{t}", 0)) for t in tags)),
        )
    )
    sources = [f"bids:{job.dataset}:{p}" for p in job.sources]
    keys = []
    for record in services.index.query(node=node):
        if record.meta.get("RollerbladeJob") == job.key or record.meta.get("Sources") != sources:
            continue
        sidecar = layout.dataset_key(job.dataset, sidecar_of(record.path))
        try:
            doc = json.loads(services.storage.read(key=sidecar))
        except NotFound:
            continue
        kept = [t for t in doc.get(TAGS_KEY, []) if t not in tags]
        doc[TAGS_KEY] = kept
        if not kept:
            del doc[TAGS_KEY]
        keys.append(services.storage.put_bytes(key=sidecar, data=json.dumps(doc, indent=2).encode()).key)
    if keys:
        outcomes = index_objects(
            [ObjectEvent("created", k) for k in keys], storage=services.storage, index=services.index, actor=actor
        )
        announce(services.bus, outcomes)


def _description(job: JobRecord) -> dict[str, Any]:
    return {
        "Name": f"{job.analysis} derivatives of {job.dataset}",
        "BIDSVersion": vocabulary().bids_version,
        "DatasetType": "derivative",
        "GeneratedBy": [
            {"Name": job.analysis, "Version": job.version, "Container": {"Type": "docker", "Tag": job.image_digest}}
        ],
        "SourceDatasets": [{"URL": f"bids:{job.dataset}"}],
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
        for job in services.index.jobs(state="running")
        if job.key not in alive and job.updated <= cutoff
    ]
    if lost:
        publish_all(services.bus, [e.to_message() for e in lost], topic=JOBS_TOPIC)
    return len(lost)
