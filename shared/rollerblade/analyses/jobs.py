"""Pure job planning: slices of records -> jobs with reproducible keys and expected outputs.

A job key is the SHA-256 of (analysis name, version, image digest, params, sorted input
checksums): the same inputs with the same image and params always give the same key, so
a job that succeeded is never computed again unless forced.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import json
from collections import defaultdict
from collections.abc import Iterable, Mapping
from typing import Any, ClassVar, Literal

from rollerblade.analyses.patterns import PatternError, derivative_path
from rollerblade.analyses.spec import AnalysisSpec
from rollerblade.query.fields import TAGS_KEY
from rollerblade.records import ScanRecord

__all__ = ["TAGS_KEY", "InputLines", "JobEnded", "JobRecord", "PlannedJob", "job_key", "output_prefix", "plan_jobs"]

JobState = Literal["planned", "running", "succeeded", "failed"]

Outcome = Literal["succeeded", "failed", "oom", "timeout", "lost", "error", "interrupted"]
OUTCOMES: tuple[str, ...] = ("succeeded", "failed", "oom", "timeout", "lost", "error", "interrupted")


@dataclasses.dataclass(frozen=True)
class JobEnded:
    """An attempt of a job ended in the executor; its outputs (if any) wait under the
    attempt's output prefix in storage. Published as the ``job.ended`` event.

    ``outcome``: ``succeeded`` (exit 0), ``failed`` (another exit code), ``oom``,
    ``timeout``, ``lost`` (the executor no longer knows the job), ``error`` (it could not
    start), ``interrupted`` (stopped by a shutdown: retried without counting an attempt).
    """

    key: str
    attempt: int
    outcome: Outcome
    exit_code: int | None = None
    started: str | None = None
    ended: str | None = None
    message: str = ""
    outputs: tuple[str, ...] = ()  # relative paths stored under the output prefix
    problems: tuple[str, ...] = ()  # e.g. symlinks the executor refused to store

    TYPE: ClassVar[str] = "job.ended"
    VERSION: ClassVar[int] = 1

    def to_message(self) -> dict[str, Any]:
        doc = dataclasses.asdict(self)
        doc["outputs"], doc["problems"] = list(self.outputs), list(self.problems)
        return {"type": self.TYPE, "v": self.VERSION, **doc}

    @classmethod
    def from_message(cls, message: Mapping[str, Any]) -> JobEnded:
        if message.get("type") != cls.TYPE or message.get("v", cls.VERSION) != cls.VERSION:
            raise ValueError(f"not a job.ended v{cls.VERSION} message: {dict(message)!r}")
        key, attempt, outcome = message.get("key"), message.get("attempt"), message.get("outcome")
        if not isinstance(key, str) or not isinstance(attempt, int) or outcome not in OUTCOMES:
            raise ValueError(f"job.ended needs a key, an integer attempt and an outcome in {OUTCOMES}")
        code = message.get("exit_code")
        return cls(
            key=key,
            attempt=attempt,
            outcome=outcome,
            exit_code=code if isinstance(code, int) else None,
            started=message.get("started"),
            ended=message.get("ended"),
            message=str(message.get("message") or ""),
            outputs=tuple(str(p) for p in message.get("outputs") or ()),
            problems=tuple(str(p) for p in message.get("problems") or ()),
        )


def output_prefix(key: str, attempt: int) -> str:
    """Where an attempt's executor stores the job's outputs until they are committed."""
    return f"jobs/{key}/{attempt}/output/"


@dataclasses.dataclass(frozen=True)
class PlannedJob:
    """One slice of records an Analysis will process."""

    key: str
    analysis: str
    dataset: str
    slice_id: str  # "sub-01" | "sub-01/ses-1" | the source path for scan slices
    entities: Mapping[str, str]  # the entities all records of the slice share
    sources: tuple[str, ...]  # record paths, in order
    outputs: tuple[str, ...]  # paths inside the derivative dataset
    problem: str | None = None  # why the job cannot run (e.g. an output pattern cannot be filled)


@dataclasses.dataclass(frozen=True)
class JobRecord:
    """The persisted state and provenance of one job."""

    key: str
    analysis: str
    version: str
    dataset: str
    slice_id: str
    state: JobState
    image_digest: str
    params: Mapping[str, Any]
    sources: tuple[str, ...]
    outputs: tuple[str, ...]
    attempts: int = 0
    message: str = ""
    started: str | None = None
    ended: str | None = None
    exit_code: int | None = None
    logs_key: str | None = None
    actor: str = ""
    rule: str = ""  # the pipeline rule that planned it ("" for a run command)
    lost: int = 0  # attempts the executor lost or a shutdown interrupted (not counted as tries)
    updated: float = 0.0  # when the state last changed (seconds since the epoch)
    tags: tuple[str, ...] = ()  # tags applied to its derivatives

    def to_doc(self) -> dict[str, Any]:
        values = vars(self)  # the fields, as __init__ set them (asdict deep-copies: slow)
        doc = {name: values[name] for name in _JOB_FIELDS}
        doc["params"] = _plain_copy(self.params)
        doc["sources"], doc["outputs"], doc["tags"] = list(self.sources), list(self.outputs), list(self.tags)
        return doc

    @classmethod
    def from_doc(cls, doc: Mapping[str, Any]) -> JobRecord:
        values = {name: doc[name] for name in _JOB_FIELDS if name in doc}
        values["sources"], values["outputs"] = tuple(doc["sources"]), tuple(doc["outputs"])
        values["tags"] = tuple(doc.get("tags") or ())
        return cls(**values)


_JOB_FIELDS: tuple[str, ...] = tuple(f.name for f in dataclasses.fields(JobRecord))
_SCALARS = (str, int, float, bool, type(None))


def _plain_copy(params: Mapping[str, Any]) -> dict[str, Any]:
    """A JSON-shaped copy of ``params``: flat text keys and scalar values are copied as
    they are (what a JSON round trip would give); anything else takes the round trip."""
    if all(type(k) is str and type(v) in _SCALARS for k, v in params.items()):
        return dict(params)
    return dict(json.loads(json.dumps(dict(params))))


class InputLines:
    """What each input record puts in a job key, worked out once per record object during
    one planning pass (a record planned by several rules, or in several slices). Records
    are compared by identity and kept here, so an id is not reused while this lives; use a
    new one for each pass."""

    def __init__(self) -> None:
        self._lines: dict[int, tuple[ScanRecord, str]] = {}

    def of(self, record: ScanRecord) -> str:
        found = self._lines.get(id(record))
        if found is None:
            found = self._lines[id(record)] = (record, _input_line(record))
        return found[1]


def _input_line(record: ScanRecord) -> str:
    return f"{record.dataset}/{record.path}:{record.file.get('md5')}:{_meta_digest(record)}"


def job_key(
    spec: AnalysisSpec,
    image_digest: str,
    records: Iterable[ScanRecord],
    salt: str = "",
    *,
    inputs: InputLines | None = None,
) -> str:
    """SHA-256 of what the job computes from: the Analysis, its image and params, and each
    input's content checksum and the metadata it receives (a late sidecar makes a new key).
    ``salt`` (a forced rerun) makes a new key for identical inputs."""
    line = inputs.of if inputs is not None else _input_line
    checksums = sorted(line(r) for r in records)
    payload = _KEY_JSON.encode([spec.name, spec.version, image_digest, dict(spec.params), checksums, salt])
    return hashlib.sha256(payload.encode()).hexdigest()


#: What ``json.dumps(..., sort_keys=True)`` (and with the separators and default below)
#: makes, without building an encoder on every call: the text of every job key ever made.
_KEY_JSON = json.JSONEncoder(sort_keys=True)
_META_JSON = json.JSONEncoder(sort_keys=True, separators=(",", ":"), default=str)


def _meta_digest(record: ScanRecord) -> str:
    meta = {k: v for k, v in record.meta.items() if k != TAGS_KEY}
    return hashlib.sha256(_META_JSON.encode(meta).encode()).hexdigest()[:16]


def _slice_id(spec: AnalysisSpec, record: ScanRecord) -> str:
    sub, ses = record.entities.get("sub"), record.entities.get("ses")
    if spec.slice == "subject" and sub:
        return f"sub-{sub}"
    if spec.slice == "session" and sub:
        return f"sub-{sub}/ses-{ses}" if ses else f"sub-{sub}"
    return record.path


@functools.lru_cache(maxsize=4096)
def _outputs(patterns: tuple[str, ...], values: tuple[tuple[str, str], ...]) -> tuple[str, ...]:
    """The output paths of a slice (the same slice is often planned by several rules)."""
    filled = dict(values)
    return tuple(derivative_path(p, filled) for p in patterns)


def plan_jobs(
    spec: AnalysisSpec,
    image_digest: str,
    records: Iterable[ScanRecord],
    salt: str = "",
    *,
    inputs: InputLines | None = None,
) -> list[PlannedJob]:
    """Group records into slices and plan one job per slice (records with errors are skipped
    by the caller's query; derivatives of this same Analysis are never inputs).
    ``inputs``: shared by the calls of one planning pass (see :class:`InputLines`)."""
    groups: dict[tuple[str, str], list[ScanRecord]] = defaultdict(list)
    own = f"derivatives/{spec.name}/"
    for record in records:
        if record.path.startswith(own):
            continue
        groups[(record.dataset, _slice_id(spec, record))].append(record)
    jobs = []
    for (dataset, slice_id), members in sorted(groups.items()):
        members.sort(key=lambda r: r.path)
        shared = dict(members[0].entities)
        for other in members[1:]:
            shared = {k: v for k, v in shared.items() if other.entities.get(k) == v}
        problem = None
        try:
            outputs = _outputs(spec.outputs, (*shared.items(), ("dataset", dataset)))
        except PatternError as e:
            outputs, problem = (), str(e)
        jobs.append(
            PlannedJob(
                key=job_key(spec, image_digest, members, salt, inputs=inputs),
                analysis=spec.name,
                dataset=dataset,
                slice_id=slice_id,
                entities=shared,
                sources=tuple(r.path for r in members),
                outputs=outputs,
                problem=problem,
            )
        )
    return jobs
