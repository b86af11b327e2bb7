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
  job's result). With ``ROLLERBLADE_EXECUTOR=gke`` (Terraform sets it) a queued job becomes
  a Kubernetes Job on the GKE Autopilot cluster, unless the in-flight limits are reached:
  then the message is retried later, so the backlog waits in Pub/Sub, not as Pending
  pods. The watcher Deployment (``rollerblade gke watch``) publishes the ends.
* ``rerun``: a Pub/Sub message whose body is ``{"query": "<aBIDS query>"}``; a selection
  larger than ``ROLLERBLADE_RERUN_BATCH`` is fanned out as one message per batch on the
  reruns topic (``ROLLERBLADE_TOPIC_PREFIX`` + ``reruns``), which this function receives too.

Settings come from the environment (ROLLERBLADE_BACKEND=gcp, ROLLERBLADE_GCP_PROJECT,
ROLLERBLADE_BUCKET, ROLLERBLADE_COLLECTION_PREFIX, and ROLLERBLADE_FUNCTION_ACTOR, the actor
recorded on what the functions index); the stack is opened once per instance.

Logs are structured: at import, the root logger gets one handler that writes each record
to stdout as one JSON object per line, which Cloud Logging parses into a log entry
(``severity``, ``message``, ``time``, source location, and as labels the function, the
CloudEvent and Pub/Sub message ids and the topic of the event being handled). Without it
the runtime drops the INFO lines, and every line would be a plain-text entry of unknown
severity.
"""

from __future__ import annotations

import base64
import contextlib
import contextvars
import datetime
import functools
import json
import logging
import os
import sys
from collections.abc import Callable, Iterator
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

#: Labels of the event being handled, added to every log line written while handling it.
_log_labels: contextvars.ContextVar[dict[str, str] | None] = contextvars.ContextVar(
    "rollerblade_log_labels", default=None
)

#: Python levels -> Cloud Logging's LogSeverity names (a custom level takes the one below it).
SEVERITIES = (
    (logging.CRITICAL, "CRITICAL"),
    (logging.ERROR, "ERROR"),
    (logging.WARNING, "WARNING"),
    (logging.INFO, "INFO"),
    (logging.DEBUG, "DEBUG"),
)


class CloudLoggingFormatter(logging.Formatter):
    """A record as one line of JSON in the shape Cloud Logging parses from a function's
    stdout: ``severity``, ``message`` (with the traceback, which Error Reporting reads),
    ``time``, ``logging.googleapis.com/sourceLocation`` and ``logging.googleapis.com/labels``
    (the handled event's labels, the logger's name, and a record's ``labels`` extra)."""

    def format(self, record: logging.LogRecord) -> str:
        message = record.getMessage()
        if record.exc_info:
            message += "\n" + self.formatException(record.exc_info)
        if record.stack_info:
            message += "\n" + self.formatStack(record.stack_info)
        labels = {"logger": record.name, **(_log_labels.get() or {})}
        extra = getattr(record, "labels", None)
        if isinstance(extra, dict):
            labels.update({str(k): str(v) for k, v in extra.items()})
        entry = {
            "severity": next((name for level, name in SEVERITIES if record.levelno >= level), "DEFAULT"),
            "message": message,
            "time": datetime.datetime.fromtimestamp(record.created, datetime.UTC).isoformat(),
            "logging.googleapis.com/sourceLocation": {
                "file": record.pathname,
                "line": str(record.lineno),
                "function": record.funcName,
            },
            "logging.googleapis.com/labels": labels,
        }
        return json.dumps(entry, ensure_ascii=False, default=str)


class _StdoutHandler(logging.Handler):
    """Writes each record to the current ``sys.stdout`` (resolved per record, not at import)."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            sys.stdout.write(self.format(record) + "\n")
            sys.stdout.flush()
        except Exception:
            self.handleError(record)


def configure_logging(level: int = logging.INFO) -> logging.Handler:
    """Install the JSON handler on the root logger, once (a second call returns it)."""
    root = logging.getLogger()
    for handler in root.handlers:
        if isinstance(handler, _StdoutHandler):
            return handler
    handler = _StdoutHandler()
    handler.setFormatter(CloudLoggingFormatter())
    root.addHandler(handler)
    root.setLevel(level)
    return handler


@contextlib.contextmanager
def log_labels(**labels: Any) -> Iterator[None]:
    """Add ``labels`` (empty values left out) to the log lines written inside the block."""
    token = _log_labels.set({**(_log_labels.get() or {}), **{k: str(v) for k, v in labels.items() if v}})
    try:
        yield
    finally:
        _log_labels.reset(token)


def _event_labels(cloud_event: Any) -> dict[str, Any]:
    """The CloudEvent's id and type, and for a Pub/Sub delivery its message id and subscription."""
    labels: dict[str, Any] = {}
    with contextlib.suppress(KeyError, TypeError, AttributeError):
        labels["event_id"] = cloud_event["id"]
        labels["event_type"] = cloud_event["type"]
    data = getattr(cloud_event, "data", None)
    if isinstance(data, dict):
        message = data.get("message")
        if isinstance(message, dict):
            labels["message_id"] = message.get("messageId") or message.get("message_id")
        subscription = data.get("subscription")
        if isinstance(subscription, str):
            labels["subscription"] = subscription.rsplit("/", 1)[-1]
    return labels


def _labelled(handler: Callable[[Any], None]) -> Callable[[Any], None]:
    """Run a function's handler with its event's labels on every log line."""

    @functools.wraps(handler)
    def run(cloud_event: Any) -> None:
        with log_labels(function=handler.__name__, **_event_labels(cloud_event)):
            handler(cloud_event)

    return run


configure_logging()


def stack() -> Stack:
    global _stack
    if _stack is None:
        settings = Settings.from_env(os.environ, home=os.environ.get("ROLLERBLADE_HOME", "/tmp/rollerblade"))
        _stack = open_stack(settings, environ=os.environ)
    return _stack


@functions_framework.cloud_event
@_labelled
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
@_labelled
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
    with log_labels(topic=topic, event=message["type"]):
        s = stack()
        services = s.services
        if topic == QUEUE_TOPIC and getattr(services.executor, "on_end", "absent") is None:
            services.executor.on_end = lambda: jobflow.collect(services)  # type: ignore[attr-defined]
        dispatch.deliver(services, topic, message, actor=Actor(s.settings.function_actor))


@functions_framework.cloud_event
@_labelled
def rule_engine(cloud_event: Any) -> None:
    _deliver(cloud_event, (SCANS_TOPIC, RESULTS_TOPIC))


@functions_framework.cloud_event
@_labelled
def job_events(cloud_event: Any) -> None:
    _deliver(cloud_event, (QUEUE_TOPIC, JOBS_TOPIC))
