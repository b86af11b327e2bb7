"""Both shapes of a bucket object event decode to the one ObjectEvent; bad ones say why."""

from __future__ import annotations

from pathlib import Path

import pytest

from rollerblade.errors import InputError
from rollerblade.pipeline.notifications import decode_object_event
from rollerblade.pipeline.reruns import decode_rerun
from rollerblade.records import ObjectEvent

KEY = "datasets/ds/sub-01/anat/sub-01_T1w.nii.gz"


def test_cloud_storage_cloudevent() -> None:
    data = {"bucket": "b", "name": KEY, "generation": "1700000000000001", "size": "10"}
    assert decode_object_event("google.cloud.storage.object.v1.finalized", data) == (
        "b",
        ObjectEvent("created", KEY, 1700000000000001),
    )
    assert decode_object_event("google.cloud.storage.object.v1.deleted", data)[1] == ObjectEvent(
        "deleted", KEY, 1700000000000001
    )


def pubsub(attributes: dict[str, str]) -> dict[str, object]:
    return {"message": {"data": "e30=", "attributes": attributes, "messageId": "1"}}


def test_pubsub_bucket_notification() -> None:
    attributes = {
        "bucketId": "b",
        "objectId": KEY,
        "eventType": "OBJECT_FINALIZE",
        "objectGeneration": "7",
        "payloadFormat": "JSON_API_V1",
    }
    kind = "google.cloud.pubsub.topic.v1.messagePublished"
    assert decode_object_event(kind, pubsub(attributes)) == ("b", ObjectEvent("created", KEY, 7))
    deleted = {**attributes, "eventType": "OBJECT_DELETE", "overwrittenByGeneration": "8"}
    assert decode_object_event(kind, pubsub(deleted)) == ("b", ObjectEvent("deleted", KEY, 7))
    assert decode_object_event(kind, pubsub({**attributes, "eventType": "OBJECT_METADATA_UPDATE"})) == ("b", None)
    # a versioned bucket reports a deletion of the live version as an archive
    archived = {**attributes, "eventType": "OBJECT_ARCHIVE"}
    assert decode_object_event(kind, pubsub(archived)) == ("b", ObjectEvent("deleted", KEY, 7))
    storage_archived = decode_object_event("google.cloud.storage.object.v1.archived", {"bucket": "b", "name": KEY})
    assert storage_archived == ("b", ObjectEvent("deleted", KEY, None))


def test_archive_of_a_deleted_file_removes_its_record_and_of_an_overwritten_one_keeps_it(tmp_path: Path) -> None:
    from rollerblade.adapters import local_dir, sqlite_index
    from rollerblade.pipeline.indexing import index_object
    from rollerblade.records import Actor

    storage = local_dir.LocalDirStorage(tmp_path / "bucket")
    index = sqlite_index.SqliteIndex(":memory:")
    keys = [
        "datasets/ds/sub-01/func/sub-01_task-rest_events.tsv",
        "datasets/ds/sub-02/func/sub-02_task-rest_events.tsv",
    ]
    for key in keys:
        storage.put_bytes(key=key, data=b"onset\tduration\n1\t2\n")
        index_object(ObjectEvent("created", key), storage=storage, index=index, actor=Actor("t"))
    storage.delete(key=keys[0])  # deleted: the live version is archived
    storage.put_bytes(key=keys[1], data=b"onset\tduration\n3\t4\n")  # overwritten: the old one is archived
    for key in keys:
        _, event = decode_object_event(
            "google.cloud.pubsub.topic.v1.messagePublished",
            pubsub({"bucketId": "b", "objectId": key, "eventType": "OBJECT_ARCHIVE", "objectGeneration": "1"}),
        )
        assert event is not None
        index_object(event, storage=storage, index=index, actor=Actor("t"))
    assert [r.path for r in index.records(dataset="ds")] == ["sub-02/func/sub-02_task-rest_events.tsv"]


@pytest.mark.parametrize(
    ("kind", "data", "message"),
    [
        ("google.cloud.storage.object.v1.finalized", {"bucket": "b"}, "no 'name'"),
        ("google.cloud.pubsub.topic.v1.messagePublished", {"nothing": 1}, "no 'message'"),
        ("google.cloud.pubsub.topic.v1.messagePublished", pubsub({"eventType": "OBJECT_FINALIZE"}), "without objectId"),
        (
            "google.cloud.pubsub.topic.v1.messagePublished",
            pubsub({"eventType": "WHATEVER"}),
            "not a bucket notification",
        ),
        (
            "google.cloud.pubsub.topic.v1.messagePublished",
            pubsub({"eventType": "OBJECT_FINALIZE", "objectId": KEY, "objectGeneration": "x"}),
            "generation is not a number",
        ),
        ("com.example.other", {}, "unknown event type 'com.example.other'"),
    ],
)
def test_malformed_events(kind: str, data: object, message: str) -> None:
    with pytest.raises(InputError, match=message):
        decode_object_event(kind, data)


def test_rerun_messages() -> None:
    assert decode_rerun(b'{"query": "suffix=T1w"}') == "suffix=T1w"
    with pytest.raises(InputError, match="not JSON"):
        decode_rerun(b"suffix=T1w")
    with pytest.raises(InputError, match='must be a JSON object like {"query"'):
        decode_rerun(b'{"q": 1}')
