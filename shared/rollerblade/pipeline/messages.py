"""The named events: typed, versioned messages and the topics that carry them.

Every state change is one of these. Each message is a JSON object with ``type`` and
``v`` (version) next to its fields; a decoder refuses a type or version it does not know
with a ``ValueError`` that says which. ``docs/events.md`` lists who publishes and who
handles each one.

=====================  ===========  ================================================
type                   topic        meaning
=====================  ===========  ================================================
object.finalized       objects      an object was written (or overwritten) in storage
object.deleted         objects      an object was removed
scan.indexed           scans        a record was created or changed in the index
job.queued             job-queue    a planned job waits for the executor's capacity
job.ended              jobs         the executor finished an attempt (any outcome)
job.succeeded          job-results  a job's derivatives are committed and indexed
job.failed             job-results  a job failed for good (retries spent)
rerun.requested        reruns       re-index or re-run what a query selects
=====================  ===========  ================================================
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any, ClassVar

from rollerblade.analyses.jobs import JobEnded

__all__ = ["JobEnded", "JobQueued", "JobResult", "ScanIndexed"]

OBJECTS_TOPIC = "objects"
SCANS_TOPIC = "scans"
QUEUE_TOPIC = "job-queue"
JOBS_TOPIC = "jobs"
RESULTS_TOPIC = "job-results"
RERUNS_TOPIC = "reruns"
TOPICS = (OBJECTS_TOPIC, SCANS_TOPIC, QUEUE_TOPIC, JOBS_TOPIC, RESULTS_TOPIC, RERUNS_TOPIC)


def _check(message: Mapping[str, Any], types: tuple[str, ...], version: int) -> None:
    kind = message.get("type")
    if kind not in types:
        raise ValueError(f"not a {' or '.join(types)} message: {dict(message)!r}")
    if message.get("v", version) != version:
        raise ValueError(f"{kind} message version {message.get('v')!r} is not {version}")


def _text(message: Mapping[str, Any], key: str) -> str:
    value = message.get(key)
    if not isinstance(value, str) or not value:
        raise ValueError(f"{message.get('type')} message needs a text {key!r}: {dict(message)!r}")
    return value


@dataclasses.dataclass(frozen=True)
class ScanIndexed:
    """A record was created or changed (its content, metadata or tags)."""

    dataset: str
    path: str  # a record's path, or a folder ending in "/" ("" : the whole dataset) whose records all changed
    md5: str | None = None

    TYPE: ClassVar[str] = "scan.indexed"
    VERSION: ClassVar[int] = 1

    def to_message(self) -> dict[str, Any]:
        return {"type": self.TYPE, "v": self.VERSION, "dataset": self.dataset, "path": self.path, "md5": self.md5}

    @classmethod
    def from_message(cls, message: Mapping[str, Any]) -> ScanIndexed:
        _check(message, (cls.TYPE,), cls.VERSION)
        md5 = message.get("md5")
        path = message.get("path")
        if not isinstance(path, str):
            raise ValueError(f"scan.indexed message needs a text 'path': {dict(message)!r}")
        return cls(_text(message, "dataset"), path, md5 if isinstance(md5, str) else None)


@dataclasses.dataclass(frozen=True)
class JobQueued:
    """A job is planned and waits for capacity (its record holds everything else)."""

    key: str

    TYPE: ClassVar[str] = "job.queued"
    VERSION: ClassVar[int] = 1

    def to_message(self) -> dict[str, Any]:
        return {"type": self.TYPE, "v": self.VERSION, "key": self.key}

    @classmethod
    def from_message(cls, message: Mapping[str, Any]) -> JobQueued:
        _check(message, (cls.TYPE,), cls.VERSION)
        return cls(_text(message, "key"))


@dataclasses.dataclass(frozen=True)
class JobResult:
    """``job.succeeded`` (derivatives committed, indexed and tagged) or ``job.failed``."""

    key: str
    analysis: str
    dataset: str
    succeeded: bool

    TYPES: ClassVar[tuple[str, str]] = ("job.succeeded", "job.failed")
    VERSION: ClassVar[int] = 1

    @property
    def type(self) -> str:
        return self.TYPES[0] if self.succeeded else self.TYPES[1]

    def to_message(self) -> dict[str, Any]:
        return {
            "type": self.type,
            "v": self.VERSION,
            "key": self.key,
            "analysis": self.analysis,
            "dataset": self.dataset,
        }

    @classmethod
    def from_message(cls, message: Mapping[str, Any]) -> JobResult:
        _check(message, cls.TYPES, cls.VERSION)
        return cls(
            _text(message, "key"),
            _text(message, "analysis"),
            _text(message, "dataset"),
            message["type"] == cls.TYPES[0],
        )
