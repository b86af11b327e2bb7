"""``rerun``: re-index (and, with the analyses issue, re-run) what an aBIDS query selects.

A rerun message is ``{"query": "<aBIDS query>"}``; every selected record's object is
handed to the indexer again (in batches, :func:`~rollerblade.pipeline.batch_indexing.index_objects`),
which reconciles it with storage. Returns how many.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from rollerblade.abids import layout
from rollerblade.errors import InputError
from rollerblade.pipeline.batch_indexing import index_objects
from rollerblade.pipeline.querying import find_records
from rollerblade.ports import Index, Storage
from rollerblade.records import Actor, ObjectEvent


def decode_rerun(body: bytes | str | Mapping[str, Any]) -> str:
    """The query of a rerun message body (JSON object with a ``query`` string)."""
    try:
        message = body if isinstance(body, Mapping) else json.loads(body)
    except (ValueError, UnicodeDecodeError) as e:
        raise InputError(f"rerun message is not JSON: {e}") from None
    if not isinstance(message, Mapping) or not isinstance(message.get("query"), str):
        raise InputError('rerun message must be a JSON object like {"query": "suffix=T1w"}')
    return str(message["query"])


#: Objects re-indexed per batch (shared reads and one write per batch).
RERUN_BATCH = 500


def rerun_query(query: str, *, storage: Storage, index: Index, actor: Actor) -> int:
    """Re-index every record ``query`` selects, in batches; returns how many."""
    keys = [layout.dataset_key(r.dataset, r.path) for r in find_records(query, index=index, actor=actor)]
    for start in range(0, len(keys), RERUN_BATCH):
        events = [ObjectEvent("created", key) for key in keys[start : start + RERUN_BATCH]]
        index_objects(events, storage=storage, index=index, actor=actor)
    return len(keys)
