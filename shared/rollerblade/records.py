"""The domain records every layer exchanges: objects, object events, scan records, metadata files.

These are plain frozen dataclasses. Adapters map them to rows or documents with
:func:`record_to_doc` / :func:`record_from_doc`; nothing here knows how they are stored.
"""

from __future__ import annotations

import dataclasses
import getpass
from collections.abc import Mapping
from typing import Any, Literal, NewType, TypedDict

JSONValue = Any  # a value decoded from JSON: None, bool, int, float, str, list, dict
Actor = NewType("Actor", str)

#: Where datasets live in the bucket: ``datasets/<name>/<BIDS path>``.
DATASETS_PREFIX = "datasets/"
#: Where Analyses write: ``derivatives/<analysis>/<dataset>/<BIDS path>``.
DERIVATIVES_PREFIX = "derivatives/"


def default_actor() -> Actor:
    """The local OS user: who acts when nobody says otherwise."""
    try:
        return Actor(getpass.getuser())
    except (KeyError, OSError):  # no passwd entry, e.g. in a bare container
        return Actor("unknown")


@dataclasses.dataclass(frozen=True)
class ObjectInfo:
    """One object in storage. ``generation`` increases every time the object is rewritten."""

    key: str
    size: int
    generation: int
    md5: str | None = None


EventKind = Literal["created", "deleted"]


@dataclasses.dataclass(frozen=True)
class ObjectEvent:
    """An object was created (or overwritten) or deleted in storage.

    Delivered at least once and in any order; ``generation`` is the object's generation
    that the event is about (``None`` when the source does not know it).
    """

    kind: EventKind
    key: str
    generation: int | None = None

    TYPES = {"created": "object.finalized", "deleted": "object.deleted"}
    VERSION = 1

    def to_message(self) -> dict[str, JSONValue]:
        return {
            "type": self.TYPES[self.kind],
            "v": self.VERSION,
            "kind": self.kind,
            "key": self.key,
            "generation": self.generation,
        }

    @classmethod
    def from_message(cls, message: Mapping[str, JSONValue]) -> ObjectEvent:
        """Decode ``object.finalized``/``object.deleted`` (and untyped v0 messages)."""
        kind = message.get("kind")
        key = message.get("key")
        generation = message.get("generation")
        typed = message.get("type")
        if typed is not None:
            kinds = {v: k for k, v in cls.TYPES.items()}
            if typed not in kinds or message.get("v", cls.VERSION) != cls.VERSION:
                raise ValueError(f"not an object event (type {typed!r}, v {message.get('v')!r})")
            kind = kinds[typed]
        if kind not in ("created", "deleted") or not isinstance(key, str):
            raise ValueError(f"not an object event: {dict(message)!r}")
        if generation is not None and not isinstance(generation, int):
            raise ValueError(f"object event generation must be an integer: {generation!r}")
        return cls(kind=kind, key=key, generation=generation)


class RecordDoc(TypedDict):
    """The persisted shape of a :class:`ScanRecord` (JSON-compatible)."""

    dataset: str
    path: str
    entities: dict[str, str]
    meta: dict[str, JSONValue]
    participant: dict[str, JSONValue]
    session: dict[str, JSONValue]
    image: dict[str, JSONValue]
    file: dict[str, JSONValue]
    error: str | None
    warning: str | None


@dataclasses.dataclass(frozen=True)
class ScanRecord:
    """Everything the index knows about one data file, denormalised for one-collection queries.

    ``entities`` holds the filename entities by key (``sub``, ``ses``, ``run`` ...) with
    their values as written, plus ``datatype``, ``suffix`` and ``extension``.
    ``meta`` is the effective sidecar metadata (inheritance principle), ``participant`` and
    ``session`` the matching rows of ``participants.tsv`` / ``sessions.tsv``, ``image`` the
    NIfTI header facts and ``file`` the storage facts (key, size, md5, generation).
    ``error`` says what is wrong with the file, if anything; such a file is still indexed.
    ``warning`` lists the schema rules its name breaks while still read as entities
    (``unknown suffix 'T1'``, ``entities out of order ...``), joined by ``"; "``.
    """

    dataset: str
    path: str
    entities: Mapping[str, str]
    meta: Mapping[str, JSONValue]
    participant: Mapping[str, JSONValue]
    session: Mapping[str, JSONValue]
    image: Mapping[str, JSONValue]
    file: Mapping[str, JSONValue]
    error: str | None = None
    warning: str | None = None

    @property
    def generation(self) -> int:
        return int(self.file.get("generation", 0))

    def to_doc(self) -> RecordDoc:
        return RecordDoc(
            dataset=self.dataset,
            path=self.path,
            entities=dict(self.entities),
            meta=dict(self.meta),
            participant=dict(self.participant),
            session=dict(self.session),
            image=dict(self.image),
            file=dict(self.file),
            error=self.error,
            warning=self.warning,
        )

    @classmethod
    def from_decoded(cls, doc: dict[str, JSONValue]) -> ScanRecord:
        """From a document just decoded from JSON, which nothing else holds: its dicts are
        used as they are, without the copies :meth:`from_doc` makes (query results)."""
        return cls(
            dataset=doc["dataset"],
            path=doc["path"],
            entities=doc["entities"],
            meta=doc["meta"],
            participant=doc["participant"],
            session=doc["session"],
            image=doc["image"],
            file=doc["file"],
            error=doc.get("error"),
            warning=doc.get("warning"),
        )

    @classmethod
    def from_doc(cls, doc: Mapping[str, JSONValue]) -> ScanRecord:
        return cls(
            dataset=doc["dataset"],
            path=doc["path"],
            entities=dict(doc["entities"]),
            meta=dict(doc["meta"]),
            participant=dict(doc["participant"]),
            session=dict(doc["session"]),
            image=dict(doc["image"]),
            file=dict(doc["file"]),
            error=doc.get("error"),
            warning=doc.get("warning"),
        )


MetadataKind = Literal["sidecar", "participants", "participants_json", "sessions", "description"]


@dataclasses.dataclass(frozen=True)
class MetadataFile:
    """A file whose content feeds the records of other files (sidecar, participants.tsv ...).

    ``directory`` is the dataset-relative folder holding it (``""`` for the root), so the
    index can hand a data file exactly the metadata files of its ancestor folders.
    ``content`` is the parsed content; ``error`` says why it could not be parsed.
    """

    dataset: str
    path: str
    kind: MetadataKind
    directory: str
    content: JSONValue
    generation: int
    error: str | None = None

    def to_doc(self) -> dict[str, JSONValue]:
        return dataclasses.asdict(self)

    @classmethod
    def from_doc(cls, doc: Mapping[str, JSONValue]) -> MetadataFile:
        return cls(**{f.name: doc[f.name] for f in dataclasses.fields(cls)})


DatasetState = Literal["importing", "ready"]


@dataclasses.dataclass(frozen=True)
class DatasetInfo:
    """A dataset registered in the index: its name, owner and description.

    ``state`` is ``"importing"`` from the moment ``rollerblade import`` claims the name
    until every file is stored and indexed (``source`` says from where, so the same
    import can be run again to finish it), then ``"ready"``. The running import holds
    ``claim`` and renews ``lease_until``; once that lapses, another run may take over.
    """

    name: str
    owner: Actor
    created: str
    description: Mapping[str, JSONValue] = dataclasses.field(default_factory=dict)
    state: DatasetState = "ready"
    source: str = ""
    claim: str = ""  # the running import's token
    lease_until: float = 0.0  # the claim lapses then (epoch seconds) unless renewed

    def to_doc(self) -> dict[str, JSONValue]:
        return {
            "name": self.name,
            "owner": self.owner,
            "created": self.created,
            "description": dict(self.description),
            "state": self.state,
            "source": self.source,
            "claim": self.claim,
            "lease_until": self.lease_until,
        }

    @classmethod
    def from_doc(cls, doc: Mapping[str, JSONValue]) -> DatasetInfo:
        return cls(
            name=doc["name"],
            owner=Actor(doc["owner"]),
            created=doc["created"],
            description=dict(doc.get("description") or {}),
            state=doc.get("state") or "ready",
            source=doc.get("source") or "",
            claim=doc.get("claim") or "",
            lease_until=float(doc.get("lease_until") or 0.0),
        )
