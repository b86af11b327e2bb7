"""``rerun``: re-index (and, with the analyses issue, re-run) what an aBIDS query selects.

A rerun message asks for it: ``{"v": 1, "query": "<aBIDS query>"}`` re-indexes;
``{"analysis": "<name>", "query": "<aBIDS query>", "force": false}`` re-runs an Analysis
over the selection (``pipeline.jobflow.queue_run``: only new job keys run, unless forced). Every selected
record's object is handed to the indexer again (in batches, through
:func:`~rollerblade.pipeline.batch_indexing.index_objects`), which reconciles it with
storage.

A selection larger than one batch is *fanned out*: the handler publishes one message per
batch on the reruns topic, each carrying its objects' keys (``"keys": [...]``), and
returns. Each batch is then handled by its own delivery, within a function's time limit,
and redelivered on its own if it fails; a redelivered fan-out message only publishes the
same batches again, which re-index idempotently.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping
from typing import Any

from rollerblade.abids import layout
from rollerblade.errors import InputError
from rollerblade.pipeline.batch_indexing import index_objects
from rollerblade.pipeline.events import publish_all
from rollerblade.pipeline.messages import RERUNS_TOPIC  # noqa: E402
from rollerblade.pipeline.querying import find_records
from rollerblade.ports import EventBus, Index, Storage
from rollerblade.records import Actor, ObjectEvent

#: Objects re-indexed per message (shared reads and one write per batch; minutes at most).
RERUN_BATCH = 500


@dataclasses.dataclass(frozen=True)
class RerunRequest:
    """A rerun was asked for: re-index what ``query`` selects, or only ``keys``, one
    fanned-out batch of it."""

    query: str
    keys: tuple[str, ...] = ()
    analysis: str = ""  # set: re-run this Analysis over the selection (else re-index it)
    force: bool = False  # with analysis: new job keys even for identical inputs

    NAME = "rerun.requested"
    VERSION = 1

    def to_message(self) -> dict[str, Any]:
        message: dict[str, Any] = {"type": self.NAME, "v": self.VERSION, "query": self.query}
        if self.analysis:
            message["analysis"], message["force"] = self.analysis, self.force
        if self.keys:
            message["keys"] = list(self.keys)
        return message

    @classmethod
    def from_message(cls, body: bytes | str | Mapping[str, Any]) -> RerunRequest:
        """Decode a message body; ``InputError`` says what is wrong with it."""
        try:
            message = body if isinstance(body, Mapping) else json.loads(body)
        except (ValueError, UnicodeDecodeError) as e:
            raise InputError(f"rerun message is not JSON: {e}") from None
        if not isinstance(message, Mapping) or not isinstance(message.get("query"), str):
            raise InputError('rerun message must be a JSON object like {"query": "suffix=T1w"}')
        if message.get("v", cls.VERSION) != cls.VERSION:
            raise InputError(f"rerun message version {message.get('v')!r} is not {cls.VERSION}")
        keys = message.get("keys", [])
        if not isinstance(keys, list) or not all(isinstance(k, str) for k in keys):
            raise InputError('rerun message "keys" must be a list of object keys')
        for key in keys:
            layout.split_key(key)  # an unsafe or foreign key is an input error, not an object
        analysis, force = message.get("analysis") or "", message.get("force", False)
        if not isinstance(analysis, str) or not isinstance(force, bool):
            raise InputError('rerun message "analysis" must be text and "force" true or false')
        if message.get("type", cls.NAME) != cls.NAME:
            raise InputError(f"not a {cls.NAME} message: type {message.get('type')!r}")
        return cls(query=str(message["query"]), keys=tuple(keys), analysis=analysis, force=force)


@dataclasses.dataclass(frozen=True)
class RerunReport:
    selected: int  # records the query selects (or keys of this batch)
    indexed: int  # objects re-indexed by this call
    published: int  # batch messages published for later deliveries


def decode_rerun(body: bytes | str | Mapping[str, Any]) -> str:
    """The query of a rerun message body (JSON object with a ``query`` string)."""
    return RerunRequest.from_message(body).query


def rerun(
    request: RerunRequest, *, storage: Storage, index: Index, bus: EventBus, actor: Actor, batch: int = RERUN_BATCH
) -> RerunReport:
    """Re-index a batch's keys, or what the query selects: inline when it fits one batch,
    otherwise as one message per batch on the reruns topic."""
    if request.keys:
        _reindex(request.keys, storage=storage, index=index, actor=actor)
        return RerunReport(len(request.keys), len(request.keys), 0)
    keys = [layout.dataset_key(r.dataset, r.path) for r in find_records(request.query, index=index, actor=actor)]
    if len(keys) <= batch:
        _reindex(keys, storage=storage, index=index, actor=actor)
        return RerunReport(len(keys), len(keys), 0)
    batches = [RerunRequest(request.query, tuple(keys[i : i + batch])) for i in range(0, len(keys), batch)]
    publish_all(bus, [b.to_message() for b in batches], topic=RERUNS_TOPIC)
    return RerunReport(len(keys), 0, len(batches))


def rerun_query(query: str, *, storage: Storage, index: Index, actor: Actor) -> int:
    """Re-index every record ``query`` selects here and now, in batches; returns how many."""
    keys = [layout.dataset_key(r.dataset, r.path) for r in find_records(query, index=index, actor=actor)]
    _reindex(keys, storage=storage, index=index, actor=actor)
    return len(keys)


def _reindex(keys: tuple[str, ...] | list[str], *, storage: Storage, index: Index, actor: Actor) -> None:
    for start in range(0, len(keys), RERUN_BATCH):
        events = [ObjectEvent("created", key) for key in keys[start : start + RERUN_BATCH]]
        index_objects(events, storage=storage, index=index, actor=actor)
