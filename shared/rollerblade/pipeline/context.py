"""The metadata a dataset's records are derived from, grouped for fast lookups.

Built from :class:`~rollerblade.records.MetadataFile` documents (sidecars, participants
and sessions tables); :func:`build_record` turns a data file's parsed path, storage facts
and this context into its :class:`~rollerblade.records.ScanRecord`. Incremental and batch
indexing both call it, which is what makes their results identical.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping
from typing import Any

from rollerblade.abids import jsontext, sidecars, tables
from rollerblade.abids.paths import BidsPath
from rollerblade.errors import InputError
from rollerblade.records import JSONValue, MetadataFile, MetadataKind, ScanRecord


class DatasetContext:
    """Sidecars by folder, participant rows and session rows of one dataset."""

    def __init__(self, files: Iterable[MetadataFile]) -> None:
        self.by_directory: dict[str, list[MetadataFile]] = defaultdict(list)
        self.participants: Mapping[str, Any] = {}
        self.sessions: dict[str, Mapping[str, Any]] = {}
        for doc in files:
            if doc.kind == "sidecar":
                self.by_directory[doc.directory].append(doc)
            elif doc.kind == "participants" and isinstance(doc.content, dict):
                self.participants = doc.content.get("rows", {})
            elif doc.kind == "sessions" and isinstance(doc.content, dict):
                self.sessions[doc.directory] = doc.content.get("rows", {})

    def sidecars_for(self, directory: str) -> list[MetadataFile]:
        return [doc for d in sidecars.ancestors(directory) for doc in self.by_directory.get(d, ())]

    def participant(self, sub: str | None) -> dict[str, Any]:
        row = self.participants.get(f"sub-{sub}") if sub else None
        return dict(row) if row else {}

    def session(self, sub: str | None, ses: str | None) -> dict[str, Any]:
        if not sub or not ses:
            return {}
        row = self.sessions.get(f"sub-{sub}", {}).get(f"ses-{ses}")
        return dict(row) if row else {}


def build_record(
    *,
    dataset: str,
    parsed: BidsPath,
    file: Mapping[str, JSONValue],
    image: Mapping[str, JSONValue],
    error: str | None,
    context: DatasetContext,
) -> ScanRecord:
    """The record of one data file: entities, inherited metadata, participant, session, facts."""
    meta, _ = sidecars.effective_metadata(parsed, context.sidecars_for(parsed.directory))
    sub, ses = parsed.entities.get("sub"), parsed.entities.get("ses")
    return ScanRecord(
        dataset=dataset,
        path=parsed.path,
        entities=parsed.all_entities(),
        meta=meta,
        participant=context.participant(sub),
        session=context.session(sub, ses),
        image=dict(image),
        file=dict(file),
        error=error,
        warning="; ".join(parsed.warnings) or None,
    )


def refreshed(record: ScanRecord, parsed: BidsPath, context: DatasetContext) -> ScanRecord:
    """The record with its derived parts recomputed from a new context (facts kept)."""
    return build_record(
        dataset=record.dataset,
        parsed=parsed,
        file=record.file,
        image=record.image,
        error=record.error,
        context=context,
    )


def parse_metadata(*, dataset: str, parsed: BidsPath, data: bytes, generation: int) -> MetadataFile:
    """Parse a metadata file's bytes; a bad file yields a document with ``error`` set."""
    kind: MetadataKind = parsed.kind  # type: ignore[assignment]
    content: JSONValue = None
    error: str | None = None
    try:
        if kind in ("participants", "sessions"):
            id_column = "participant_id" if kind == "participants" else "session_id"
            content, error = tables.parse_tsv(data, parsed.path, id_column=id_column)
        else:
            content = jsontext.parse_json_object(data, parsed.path)
    except InputError as e:
        content, error = None, str(e)
    return MetadataFile(
        dataset=dataset,
        path=parsed.path,
        kind=kind,
        directory=parsed.directory,
        content=content,
        generation=generation,
        error=error,
    )
