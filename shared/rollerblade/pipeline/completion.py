"""``on_job_ended``: what happens when an attempt of a job ends (the ``job.ended`` event).

Succeeded: check the outputs (every declared file, nothing undeclared, no symlinks, its
sources still indexed), commit them with provenance sidecars to
``derivatives/<analysis>/<dataset>/``, index them, apply the pipeline rules' tags (and
take them off older derivatives of the same sources), and only then record the job
``succeeded`` (compare-and-set on state and attempts) and publish ``job.succeeded``.
Otherwise: retry while the Analysis's ``retries`` allow (a lost or interrupted attempt
costs no try, up to :data:`MAX_LOST` times), else record ``failed`` and publish
``job.failed``. A duplicate or stale ``job.ended`` changes nothing.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import time
from collections.abc import Callable, Mapping
from typing import Any

from rollerblade.abids import layout
from rollerblade.abids.schema import vocabulary
from rollerblade.analyses.jobs import TAGS_KEY, JobEnded, JobRecord, output_prefix
from rollerblade.analyses.spec import AnalysisSpec
from rollerblade.errors import NotFound
from rollerblade.pipeline.analyses import get_analysis
from rollerblade.pipeline.batch_indexing import index_objects
from rollerblade.pipeline.events import announce
from rollerblade.pipeline.jobflow import logs_key
from rollerblade.pipeline.messages import QUEUE_TOPIC, RESULTS_TOPIC, JobQueued, JobResult
from rollerblade.pipeline.services import Services
from rollerblade.ports import Storage
from rollerblade.query import ast
from rollerblade.query.evaluate import matches
from rollerblade.query.fields import flatten
from rollerblade.records import Actor, ObjectEvent

log = logging.getLogger(__name__)

#: Times a job may be lost by its executor (or interrupted by shutdowns) before it fails.
MAX_LOST = 5

TagRules = Callable[[str], list[tuple[ast.Node, tuple[str, ...]]]]


def on_job_ended(services: Services, ended: JobEnded, *, actor: Actor, tag_rules: TagRules | None = None) -> str:
    """Handle one ``job.ended``; returns what it did (for logs and tests)."""
    index = services.index
    job = services.jobs.get_job(key=ended.key)
    if job is None:
        log.warning("job.ended for unknown job %s: ignored", ended.key[:12])
        return "unknown"
    if job.state != "running" or job.attempts != ended.attempt:
        if job.attempts == ended.attempt and job.state in ("succeeded", "failed"):
            # a redelivery after the state was written: announce the result again
            services.bus.publish(topic=RESULTS_TOPIC, message=_result(job).to_message())
        # a redelivery after a crash between recording the state and cleaning up: clean up
        _discard(services.storage, output_prefix(ended.key, ended.attempt))
        return "stale"
    try:
        spec: AnalysisSpec | None = get_analysis(job.analysis, index=services.catalog)[0]
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
        if services.jobs.swap_job(job=final, state="running", attempts=ended.attempt):
            services.bus.publish(topic=RESULTS_TOPIC, message=_result(final).to_message())
        _discard(services.storage, f"jobs/{job.key}/")  # every attempt's staged outputs
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
    if services.jobs.swap_job(job=following, state="running", attempts=ended.attempt):
        if following.state == "planned":
            services.bus.publish(topic=QUEUE_TOPIC, message=JobQueued(job.key).to_message())
        else:
            services.bus.publish(topic=RESULTS_TOPIC, message=_result(following).to_message())
    _discard(services.storage, f"jobs/{job.key}/" if following.state == "failed" else prefix)
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
