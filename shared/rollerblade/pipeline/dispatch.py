"""One registry of handlers, one dispatcher: what ``serve``, ``run``, the CLI drains and the
Cloud Functions all call with the messages of a topic.

:data:`HANDLERS` maps each topic to how its messages decode and which use case handles
them. :func:`handle` runs a batch and says, per message, whether it is done (ack) or
must be delivered again (an exception: nack, after which the bus redelivers it and,
past its attempt limit, dead-letters it). A message that cannot be decoded can never
succeed: it is logged and acknowledged, never retried forever.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from rollerblade.errors import InputError, TemporaryError
from rollerblade.pipeline import automation, completion, jobflow, reruns
from rollerblade.pipeline.analyses import get_analysis
from rollerblade.pipeline.batch_indexing import index_objects
from rollerblade.pipeline.collector import collector_held
from rollerblade.pipeline.events import announce
from rollerblade.pipeline.indexing import index_object
from rollerblade.pipeline.messages import (
    JOBS_TOPIC,
    OBJECTS_TOPIC,
    QUEUE_TOPIC,
    RERUNS_TOPIC,
    RESULTS_TOPIC,
    SCANS_TOPIC,
    JobEnded,
    JobQueued,
    JobResult,
    ScanIndexed,
)
from rollerblade.pipeline.services import Services
from rollerblade.records import Actor, ObjectEvent

log = logging.getLogger(__name__)

Outcome = BaseException | None  # None: done (ack); an exception: deliver again (nack)
BatchHandler = Callable[[Services, Sequence[Any], Actor], list[Outcome]]


@dataclasses.dataclass(frozen=True)
class Route:
    decode: Callable[[Mapping[str, Any]], Any]
    handle: BatchHandler


def _one_by_one(handler: Callable[[Services, Any, Actor], object]) -> BatchHandler:
    def run(services: Services, events: Sequence[Any], actor: Actor) -> list[Outcome]:
        outcomes: list[Outcome] = []
        for event in events:
            try:
                handler(services, event, actor)
                outcomes.append(None)
            except Exception as e:  # retried by the bus; one event's trouble holds back no other
                outcomes.append(e)
        return outcomes

    return run


def _objects(services: Services, events: Sequence[ObjectEvent], actor: Actor) -> list[Outcome]:
    try:
        outcomes = index_objects(events, storage=services.storage, index=services.index, actor=actor)
    except Exception as e:  # one event's trouble must not hold back the others: one by one
        log.info("batch of %d object events failed (%s); handling them one by one", len(events), e)
    else:
        announce(services.bus, outcomes)
        return [None] * len(events)

    def one(services: Services, event: ObjectEvent, actor: Actor) -> None:
        announce(services.bus, [index_object(event, storage=services.storage, index=services.index, actor=actor)])

    return _one_by_one(one)(services, events, actor)


def _scans(services: Services, events: Sequence[ScanIndexed], actor: Actor) -> list[Outcome]:
    try:
        automation.on_scans_indexed(services, events, actor=actor)
        return [None] * len(events)
    except Exception:  # noqa: BLE001 - find the one that fails, one by one
        return _one_by_one(lambda s, e, a: automation.on_scans_indexed(s, [e], actor=a))(services, events, actor)


def _job_ended(services: Services, event: JobEnded, actor: Actor) -> None:
    completion.on_job_ended(services, event, actor=actor, tag_rules=automation.tag_rules_of(services))
    if not services.executor.local:  # a slot freed in the cluster: the oldest waiting jobs go
        jobflow.admit_waiting(services)


def _queued(services: Services, event: JobQueued, actor: Actor) -> None:
    if not services.executor.local:  # a cluster: over the limits, the job waits as a planned record
        job = services.jobs.get_job(key=event.key)
        if job is None or job.state != "planned":
            return
        spec, _ = get_analysis(job.analysis, index=services.catalog)
        why = jobflow.in_flight_limit(services, job.analysis, spec)
        if why:  # acknowledged: admit_waiting announces it again when a job ends
            log.info("job %s waits: %s", event.key[:12], why)
            return
    jobflow.submit_job(services, event.key, actor=actor)


def _rerun(services: Services, request: reruns.RerunRequest, actor: Actor) -> None:
    if request.analysis:
        jobflow.queue_run(services, request.analysis, request.query, actor=actor, force=request.force)
    else:
        reruns.rerun(request, storage=services.storage, index=services.index, bus=services.bus, actor=actor)


HANDLERS: dict[str, Route] = {
    OBJECTS_TOPIC: Route(ObjectEvent.from_message, _objects),
    SCANS_TOPIC: Route(ScanIndexed.from_message, _scans),
    QUEUE_TOPIC: Route(JobQueued.from_message, _one_by_one(_queued)),
    JOBS_TOPIC: Route(JobEnded.from_message, _one_by_one(_job_ended)),
    RESULTS_TOPIC: Route(JobResult.from_message, _one_by_one(lambda s, e, a: automation.on_job_result(s, e, actor=a))),
    RERUNS_TOPIC: Route(reruns.RerunRequest.from_message, _one_by_one(_rerun)),
}


def handle(services: Services, topic: str, messages: Sequence[Mapping[str, Any]], *, actor: Actor) -> list[Outcome]:
    """Handle a batch of one topic's messages; one outcome per message."""
    route = HANDLERS[topic]
    outcomes: list[Outcome] = [None] * len(messages)
    decoded: list[tuple[int, Any]] = []
    for position, message in enumerate(messages):
        try:
            decoded.append((position, route.decode(message)))
        except (ValueError, InputError) as e:
            log.error("dropping malformed %s message: %s", topic, e)
    with collector_held():
        results = route.handle(services, [event for _, event in decoded], actor) if decoded else []
    for (position, _), result in zip(decoded, results, strict=True):
        outcomes[position] = result
    return outcomes


def deliver(services: Services, topic: str, message: Mapping[str, Any], *, actor: Actor) -> None:
    """Handle one message (a Cloud Function's push delivery); raises when it must be retried."""
    (outcome,) = handle(services, topic, [message], actor=actor)
    if outcome is not None:
        raise outcome


def pump(services: Services, topic: str, *, actor: Actor, max_messages: int = 256, lease_seconds: float = 120.0) -> int:
    """Pull one batch of ``topic`` from the bus, handle it, ack or nack; returns how many."""
    messages = services.bus.pull(topic=topic, max_messages=max_messages, lease_seconds=lease_seconds)
    if not messages:
        return 0
    outcomes = handle(services, topic, [body for _, body in messages], actor=actor)
    done = []
    for (message_id, _), outcome in zip(messages, outcomes, strict=True):
        if outcome is None:
            done.append(message_id)
        else:
            delay = outcome.delay if isinstance(outcome, TemporaryError) else 1.0
            if not isinstance(outcome, TemporaryError):
                log.error(
                    "%s message %s failed; it will be retried: %s: %s",
                    topic,
                    message_id,
                    type(outcome).__name__,
                    outcome,
                )
            services.bus.nack(message_id=message_id, delay=delay, error=f"{type(outcome).__name__}: {outcome}")
    if done:
        services.bus.ack(message_ids=done)
    return len(messages)
