"""One event at a time: late metadata updates the records it feeds, deletions undo it,
duplicates and stale events change nothing."""

from __future__ import annotations

import json
from pathlib import Path

from rollerblade.pipeline.indexing import index_object
from rollerblade.records import ObjectEvent
from rollerblade.stack import Stack
from tests.conftest import ACTOR

BOLD = "sub-001/ses-1/func/sub-001_ses-1_task-rest_run-01_bold.nii.gz"


def drop(stack: Stack, rel: str, data: bytes) -> str:
    """Upload one object into dataset ds and deliver its event, as the bucket would."""
    info = stack.storage.put_bytes(key=f"datasets/ds/{rel}", data=data)
    outcome = index_object(
        ObjectEvent("created", info.key, info.generation), storage=stack.storage, index=stack.index, actor=ACTOR
    )
    return outcome.action


def remove(stack: Stack, rel: str) -> str:
    stack.storage.delete(key=f"datasets/ds/{rel}")
    return index_object(
        ObjectEvent("deleted", f"datasets/ds/{rel}"), storage=stack.storage, index=stack.index, actor=ACTOR
    ).action


def bold(stack: Stack) -> dict[str, object]:
    record = stack.index.get_record(dataset="ds", path=BOLD)
    assert record is not None
    return {"meta": record.meta, "participant": record.participant, "session": record.session}


def test_late_metadata_updates_and_deletion_reverts(stack: Stack, real_cohort: dict[str, Path]) -> None:
    image = (real_cohort["site-a"] / BOLD).read_bytes()
    assert drop(stack, BOLD, image) == "indexed"
    assert bold(stack) == {"meta": {}, "participant": {}, "session": {}}
    drop(stack, "task-rest_bold.json", json.dumps({"RepetitionTime": 2.0, "EchoTime": 0.03}).encode())
    drop(stack, "sub-001/sub-001_task-rest_bold.json", json.dumps({"EchoTime": 0.035}).encode())
    drop(stack, "participants.tsv", b"participant_id\tage\tsex\nsub-001\t64\tF\n")
    drop(stack, "sub-001/sub-001_sessions.tsv", b"session_id\tvisit\nses-1\tbaseline\n")
    assert bold(stack) == {
        "meta": {"RepetitionTime": 2.0, "EchoTime": 0.035},
        "participant": {"participant_id": "sub-001", "age": 64, "sex": "F"},
        "session": {"session_id": "ses-1", "visit": "baseline"},
    }
    drop(stack, "participants.tsv", b"participant_id\tage\tsex\nsub-001\t65\tF\n")  # overwritten
    assert bold(stack)["participant"] == {"participant_id": "sub-001", "age": 65, "sex": "F"}
    assert remove(stack, "sub-001/sub-001_task-rest_bold.json") == "metadata"
    assert bold(stack)["meta"] == {"RepetitionTime": 2.0, "EchoTime": 0.03}
    remove(stack, "participants.tsv")
    assert bold(stack)["participant"] == {}
    assert remove(stack, BOLD) == "deleted"
    assert stack.index.get_record(dataset="ds", path=BOLD) is None


def test_duplicates_and_stale_events_change_nothing(stack: Stack, real_cohort: dict[str, Path]) -> None:
    image = (real_cohort["site-a"] / BOLD).read_bytes()
    key = f"datasets/ds/{BOLD}"
    first = stack.storage.put_bytes(key=key, data=image)
    event = ObjectEvent("created", key, first.generation)
    assert index_object(event, storage=stack.storage, index=stack.index, actor=ACTOR).action == "indexed"
    assert index_object(event, storage=stack.storage, index=stack.index, actor=ACTOR).action == "unchanged"
    # a deletion notice for an object that exists again (re-uploaded since) keeps the record
    assert (
        index_object(
            ObjectEvent("deleted", key, first.generation), storage=stack.storage, index=stack.index, actor=ACTOR
        ).action
        == "unchanged"
    )
    assert stack.index.get_record(dataset="ds", path=BOLD) is not None
    # a creation notice for an object already deleted again removes the record
    stack.storage.delete(key=key)
    assert index_object(event, storage=stack.storage, index=stack.index, actor=ACTOR).action == "deleted"
    assert stack.index.get_record(dataset="ds", path=BOLD) is None


def test_a_sidecar_only_touches_records_with_its_suffix(stack: Stack, real_cohort: dict[str, Path]) -> None:
    t1 = "sub-001/ses-1/anat/sub-001_ses-1_T1w.nii.gz"
    drop(stack, t1, (real_cohort["site-a"] / t1).read_bytes())
    drop(stack, BOLD, (real_cohort["site-a"] / BOLD).read_bytes())
    key = "datasets/ds/T1w.json"
    info = stack.storage.put_bytes(key=key, data=b'{"MagneticFieldStrength": 3}')
    outcome = index_object(
        ObjectEvent("created", key, info.generation), storage=stack.storage, index=stack.index, actor=ACTOR
    )
    assert outcome.action == "metadata"
    t1_record = stack.index.get_record(dataset="ds", path=t1)
    assert t1_record is not None and t1_record.meta["MagneticFieldStrength"] == 3
    assert bold(stack)["meta"] == {}
