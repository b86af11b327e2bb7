"""Decode the shapes in which a deployment delivers bucket object events.

* a Cloud Storage CloudEvent (Eventarc storage trigger):
  ``google.cloud.storage.object.v1.finalized`` / ``.deleted`` with the object as data;
* a Pub/Sub message carrying a bucket notification (``JSON_API_V1``): attributes
  ``bucketId``, ``objectId``, ``eventType`` (``OBJECT_FINALIZE``, ``OBJECT_DELETE`` ...),
  ``objectGeneration``; delivered as ``google.cloud.pubsub.topic.v1.messagePublished``.

Both become the one :class:`~rollerblade.records.ObjectEvent` the handler takes. In a
versioned bucket (ours is) deleting a file makes its live version noncurrent, which Cloud
Storage reports as *archive*, not *delete*; overwriting one also archives the old version.
Archive events therefore decode as deletions: the handler reconciles with what the bucket
holds now, so an archive caused by an overwrite re-reads the new version and changes
nothing. Metadata updates decode to ``None``.
Malformed input raises :class:`~rollerblade.errors.InputError`: retrying cannot fix it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from rollerblade.errors import InputError
from rollerblade.records import EventKind, ObjectEvent

STORAGE_TYPES: dict[str, EventKind] = {
    "google.cloud.storage.object.v1.finalized": "created",
    "google.cloud.storage.object.v1.deleted": "deleted",
    "google.cloud.storage.object.v1.archived": "deleted",
}
PUBSUB_TYPE = "google.cloud.pubsub.topic.v1.messagePublished"
NOTIFICATION_TYPES: dict[str, EventKind] = {
    "OBJECT_FINALIZE": "created",
    "OBJECT_DELETE": "deleted",
    "OBJECT_ARCHIVE": "deleted",
}
IGNORED_NOTIFICATIONS = ("OBJECT_METADATA_UPDATE",)


def _generation(value: Any) -> int | None:
    if value in (None, ""):
        return None
    try:
        return int(value)
    except (TypeError, ValueError):
        raise InputError(f"object generation is not a number: {value!r}") from None


def decode_object_event(event_type: str, data: Any) -> tuple[str, ObjectEvent | None]:
    """(bucket, object event) a CloudEvent carries; the event is ``None`` for events to
    acknowledge and ignore."""
    if event_type in STORAGE_TYPES:
        if not isinstance(data, Mapping) or not isinstance(data.get("name"), str):
            raise InputError(f"{event_type}: data is not a Cloud Storage object (no 'name'): {str(data)[:200]}")
        event = ObjectEvent(STORAGE_TYPES[event_type], data["name"], _generation(data.get("generation")))
        return str(data.get("bucket") or ""), event
    if event_type == PUBSUB_TYPE:
        message = data.get("message") if isinstance(data, Mapping) else None
        if not isinstance(message, Mapping):
            raise InputError(f"{event_type}: no 'message' in the event data: {str(data)[:200]}")
        attributes = message.get("attributes") or {}
        return str(attributes.get("bucketId") or ""), decode_notification(attributes)
    raise InputError(f"unknown event type {event_type!r}; expected a Cloud Storage or Pub/Sub event")


def decode_notification(attributes: Mapping[str, Any]) -> ObjectEvent | None:
    """A bucket notification's attributes -> object event (``None``: nothing to index)."""
    kind = attributes.get("eventType")
    key = attributes.get("objectId")
    if kind in IGNORED_NOTIFICATIONS:
        return None
    if kind not in NOTIFICATION_TYPES:
        raise InputError(f"not a bucket notification: eventType={kind!r} (attributes: {dict(attributes)})")
    if not isinstance(key, str) or not key:
        raise InputError(f"bucket notification without objectId: {dict(attributes)}")
    return ObjectEvent(NOTIFICATION_TYPES[kind], key, _generation(attributes.get("objectGeneration")))
