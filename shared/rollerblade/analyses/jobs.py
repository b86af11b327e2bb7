"""Pure job planning: slices of records -> jobs with reproducible keys and expected outputs.

A job key is the SHA-256 of (analysis name, version, image digest, params, sorted input
checksums): the same inputs with the same image and params always give the same key, so
a job that succeeded is never computed again unless forced.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from collections import defaultdict
from collections.abc import Iterable, Mapping
from typing import Any, Literal

from rollerblade.analyses.patterns import PatternError, derivative_path
from rollerblade.analyses.spec import AnalysisSpec
from rollerblade.records import ScanRecord

JobState = Literal["planned", "running", "succeeded", "failed"]


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

    def to_doc(self) -> dict[str, Any]:
        doc = dataclasses.asdict(self)
        doc["sources"], doc["outputs"] = list(self.sources), list(self.outputs)
        return doc

    @classmethod
    def from_doc(cls, doc: Mapping[str, Any]) -> JobRecord:
        values = {f.name: doc[f.name] for f in dataclasses.fields(cls) if f.name in doc}
        values["sources"], values["outputs"] = tuple(doc["sources"]), tuple(doc["outputs"])
        return cls(**values)


def job_key(spec: AnalysisSpec, image_digest: str, records: Iterable[ScanRecord]) -> str:
    checksums = sorted(f"{r.dataset}/{r.path}:{r.file.get('md5')}" for r in records)
    payload = json.dumps([spec.name, spec.version, image_digest, dict(spec.params), checksums], sort_keys=True)
    return hashlib.sha256(payload.encode()).hexdigest()


def _slice_id(spec: AnalysisSpec, record: ScanRecord) -> str:
    sub, ses = record.entities.get("sub"), record.entities.get("ses")
    if spec.slice == "subject" and sub:
        return f"sub-{sub}"
    if spec.slice == "session" and sub:
        return f"sub-{sub}/ses-{ses}" if ses else f"sub-{sub}"
    return record.path


def plan_jobs(spec: AnalysisSpec, image_digest: str, records: Iterable[ScanRecord]) -> list[PlannedJob]:
    """Group records into slices and plan one job per slice (records with errors are skipped
    by the caller's query; derivatives of this same Analysis are never inputs)."""
    groups: dict[tuple[str, str], list[ScanRecord]] = defaultdict(list)
    for record in records:
        if record.path.startswith(f"derivatives/{spec.name}/"):
            continue
        groups[(record.dataset, _slice_id(spec, record))].append(record)
    jobs = []
    for (dataset, slice_id), members in sorted(groups.items()):
        members.sort(key=lambda r: r.path)
        shared = dict(members[0].entities)
        for other in members[1:]:
            shared = {k: v for k, v in shared.items() if other.entities.get(k) == v}
        values = {**shared, "dataset": dataset}
        problem = None
        try:
            outputs = tuple(derivative_path(p, values) for p in spec.outputs)
        except PatternError as e:
            outputs, problem = (), str(e)
        jobs.append(
            PlannedJob(
                key=job_key(spec, image_digest, members),
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
