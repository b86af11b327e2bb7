"""Cloud Functions entry points (functions-framework). Thin: decode, call the core handler,
log. An exception makes the function answer 500, so Pub/Sub / Eventarc retry the event;
input that can never succeed (malformed message, unknown event type) is logged and
acknowledged, and a bad object (corrupt NIfTI, malformed name) is indexed with its error.

* ``index_object``: bucket object events, as a Cloud Storage CloudEvent or as a Pub/Sub
  message carrying a bucket notification.
* ``rule_engine``: ``scan.indexed`` (scans topic) and ``job.succeeded``/``job.failed``
  (job-results topic) messages: the pipeline rules plan jobs and queue them.
* ``job_events``: ``job.queued`` (job-queue topic: submit to the executor) and
  ``job.ended`` (jobs topic: check, commit, index and tag the outputs, then publish the
  job's result). Until the GKE executor exists, jobs run on the function host's Docker
  engine (``ROLLERBLADE_EXECUTOR``), whose ends this function publishes itself.
* ``rerun``: a Pub/Sub message whose body is ``{"query": "<aBIDS query>"}``; a selection
  larger than ``ROLLERBLADE_RERUN_BATCH`` is fanned out as one message per batch on the
  reruns topic (``ROLLERBLADE_TOPIC_PREFIX`` + ``reruns``), which this function receives too.

Settings come from the environment (ROLLERBLADE_BACKEND=gcp, ROLLERBLADE_GCP_PROJECT,
ROLLERBLADE_BUCKET, ROLLERBLADE_COLLECTION_PREFIX, and ROLLERBLADE_FUNCTION_ACTOR, the actor
recorded on what the functions index); the stack is opened once per instance.
"""

from __future__ import annotations

import base64
import json
import logging
import os
from typing import Any

import functions_framework

from rollerblade.errors import InputError
from rollerblade.pipeline import dispatch, indexing, jobflow, notifications, reruns
from rollerblade.pipeline.events import announce
from rollerblade.pipeline.messages import JOBS_TOPIC, QUEUE_TOPIC, RERUNS_TOPIC, RESULTS_TOPIC, SCANS_TOPIC
from rollerblade.records import Actor
from rollerblade.settings import Settings
from rollerblade.stack import Stack, open_stack

log = logging.getLogger("rollerblade.functions")
_stack: Stack | None = None


def stack() -> Stack:
    global _stack
    if _stack is None:
        settings = Settings.from_env(os.environ, home=os.environ.get("ROLLERBLADE_HOME", "/tmp/rollerblade"))
        _stack = open_stack(settings, environ=os.environ)
    return _stack


@functions_framework.cloud_event
def index_object(cloud_event: Any) -> None:
    try:
        bucket, event = notifications.decode_object_event(cloud_event["type"], cloud_event.data)
    except InputError as e:
        log.error("acknowledged without indexing: %s", e)
        return
    s = stack()
    if event is None or bucket != s.settings.bucket:
        log.info("ignored %s for bucket %r", cloud_event["type"], bucket)
        return
    outcome = indexing.index_object(event, storage=s.storage, index=s.index, actor=Actor(s.settings.function_actor))
    if s.settings.topic_prefix:  # a deployment: the rule engine listens on the scans topic
        announce(s.bus, [outcome])
    log.info("%s %s: %s%s", event.kind, event.key, outcome.action, f" ({outcome.error})" if outcome.error else "")


@functions_framework.cloud_event
def rerun(cloud_event: Any) -> None:
    try:
        message = (cloud_event.data or {}).get("message") or {}
        request = reruns.RerunRequest.from_message(base64.b64decode(message.get("data") or b"").decode("utf-8"))
    except (InputError, ValueError, AttributeError) as e:
        log.error("rerun message acknowledged without action: %s", e)
        return
    s = stack()
    actor = Actor(s.settings.function_actor)
    report = reruns.rerun(
        request, storage=s.storage, index=s.index, bus=s.bus, actor=actor, batch=s.settings.rerun_batch
    )
    log.info(
        "rerun %r: %d selected, %d re-indexed, %d batches published",
        request.query,
        report.selected,
        report.indexed,
        report.published,
    )


#: Which topic's handler a message's ``type`` goes to.
TYPE_TOPICS = {
    "scan.indexed": SCANS_TOPIC,
    "job.succeeded": RESULTS_TOPIC,
    "job.failed": RESULTS_TOPIC,
    "job.queued": QUEUE_TOPIC,
    "job.ended": JOBS_TOPIC,
    "rerun.requested": RERUNS_TOPIC,
}


def _deliver(cloud_event: Any, accepted: tuple[str, ...]) -> None:
    """Decode a Pub/Sub push delivery and hand it to the dispatcher (an exception makes
    Pub/Sub deliver it again; a message that can never succeed is logged and acked)."""
    try:
        data = base64.b64decode(((cloud_event.data or {}).get("message") or {}).get("data") or b"")
        message = json.loads(data)
        topic = TYPE_TOPICS[message["type"]]
    except (ValueError, KeyError, TypeError, AttributeError) as e:
        log.error("message acknowledged without action (not a Rollerblade event): %s", e)
        return
    if topic not in accepted:
        log.error("%s message acknowledged without action: this function handles %s", message["type"], accepted)
        return
    s = stack()
    services = s.services
    if topic == QUEUE_TOPIC and getattr(services.executor, "on_end", "absent") is None:
        services.executor.on_end = lambda: jobflow.collect(services)  # type: ignore[attr-defined]
    dispatch.deliver(services, topic, message, actor=Actor(s.settings.function_actor))


@functions_framework.cloud_event
def rule_engine(cloud_event: Any) -> None:
    _deliver(cloud_event, (SCANS_TOPIC, RESULTS_TOPIC))


@functions_framework.cloud_event
def job_events(cloud_event: Any) -> None:
    _deliver(cloud_event, (QUEUE_TOPIC, JOBS_TOPIC))
