"""The local event loop: deliver queued object events to the indexer until none remain.

Each pulled batch goes to :func:`~rollerblade.pipeline.batch_indexing.index_objects`
(the same result as ``index_object`` per event, with shared reads and writes); if the
batch fails, its events are handled one by one, so one event's trouble holds back no other.

The same messages a bucket notification would carry go through the durable bus, so an
interrupted import resumes by draining again. A handler error that may pass
(``TemporaryError``, an unexpected exception) is nacked and retried later; a message
that keeps failing ends in the bus's dead letters, never blocking the rest.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from rollerblade.abids import layout
from rollerblade.errors import BidsNameError, InputError, TemporaryError
from rollerblade.pipeline.batch_indexing import index_objects
from rollerblade.pipeline.collector import collector_held
from rollerblade.pipeline.indexing import IndexOutcome, index_object, locate, refresh_scope
from rollerblade.pipeline.messages import OBJECTS_TOPIC, SCANS_TOPIC, ScanIndexed
from rollerblade.ports import EventBus, Index, Storage
from rollerblade.records import Actor, ObjectEvent

log = logging.getLogger(__name__)


def publish_all(bus: EventBus, messages: Sequence[Mapping[str, Any]], *, topic: str = OBJECTS_TOPIC) -> None:
    """Publish messages in one call where the bus has one (``publish_many``)."""
    publish_many = getattr(bus, "publish_many", None)
    if publish_many is not None:
        publish_many(topic=topic, messages=messages)
        return
    for message in messages:
        bus.publish(topic=topic, message=message)


def announce(bus: EventBus, outcomes: Sequence[IndexOutcome]) -> int:
    """Publish ``scan.indexed`` for what indexing changed: a record (``indexed``), or every
    record below a metadata file's folder (``metadata``)."""
    messages = []
    for outcome in outcomes:
        if outcome.action not in ("indexed", "metadata"):
            continue
        try:
            dataset, inner, analysis = layout.split_key(outcome.key)
            parsed = locate(inner, analysis)
        except (InputError, BidsNameError):  # indexed with its error; no rule takes such a record
            continue
        path = parsed.path if outcome.action == "indexed" else refresh_scope(parsed)
        messages.append(ScanIndexed(dataset, path).to_message())
    if messages:
        publish_all(bus, messages, topic=SCANS_TOPIC)
    return len(messages)


@dataclasses.dataclass
class DrainReport:
    handled: int = 0
    retried: int = 0
    outcomes: list[IndexOutcome] = dataclasses.field(default_factory=list)


def drain_object_events(
    *,
    bus: EventBus,
    storage: Storage,
    index: Index,
    actor: Actor,
    progress: Callable[[int], None] | None = None,
    batch: int = 256,
    lease_seconds: float = 60.0,
) -> DrainReport:
    """Handle every deliverable message on the objects topic; returns what happened.

    Several drains may run at once (processes, threads): each leases its own messages
    for ``lease_seconds``, after which a crashed drain's messages are delivered again.
    """
    report = DrainReport()
    while True:
        messages = bus.pull(topic=OBJECTS_TOPIC, max_messages=batch, lease_seconds=lease_seconds)
        if not messages:
            return report
        done: list[str] = []
        first = len(report.outcomes)
        decoded: list[tuple[str, ObjectEvent]] = []
        for message_id, body in messages:
            try:
                decoded.append((message_id, ObjectEvent.from_message(body)))
            except ValueError as e:
                log.error("dropping malformed object event %s: %s", message_id, e)
                done.append(message_id)
        try:
            with collector_held():
                outcomes = index_objects([e for _, e in decoded], storage=storage, index=index, actor=actor)
        except Exception as e:  # one event's trouble must not hold back the others: one by one
            log.info("batch of %d events failed (%s); handling them one by one", len(decoded), e)
            outcomes = None
        for position, (message_id, event) in enumerate(decoded):
            if outcomes is not None:
                outcome = outcomes[position]
            else:
                try:
                    outcome = index_object(event, storage=storage, index=index, actor=actor)
                except TemporaryError as e:
                    bus.nack(message_id=message_id, delay=e.delay, error=str(e))
                    report.retried += 1
                    continue
                except Exception as e:  # a bug or an outage: retry later, never lose the event
                    log.exception("indexing %s failed; it will be retried", event.key)
                    bus.nack(message_id=message_id, delay=0.0, error=f"{type(e).__name__}: {e}")
                    report.retried += 1
                    continue
            done.append(message_id)
            report.outcomes.append(outcome)
            report.handled += 1
            if progress is not None:
                progress(1)
        announce(bus, report.outcomes[first:])
        bus.ack(message_ids=done)
