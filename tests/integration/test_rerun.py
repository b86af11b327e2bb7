"""``rerun``: a message with an aBIDS query re-indexes what it selects; a selection larger
than a batch is fanned out as one message per batch, each handled on its own."""

from __future__ import annotations

from pathlib import Path

import pytest

from rollerblade.errors import InputError
from rollerblade.pipeline import reruns
from rollerblade.stack import Stack
from tests.conftest import ACTOR
from tests.integration.conftest import import_into


def test_rerun_reconciles_the_selected_records(stack: Stack, real_cohort: dict[str, Path]) -> None:
    import_into(stack, real_cohort["site-b"], "site-b")
    key = "datasets/site-b/sub-002/ses-1/anat/sub-002_ses-1_T1w.nii.gz"
    stack.storage.delete(key=key)  # removed behind the index's back (no event delivered)
    assert stack.index.get_record(dataset="site-b", path=key.split("/", 2)[2]) is not None
    query = reruns.decode_rerun(b'{"query": "dataset=site-b AND suffix=T1w"}')
    assert reruns.rerun_query(query, storage=stack.storage, index=stack.index, actor=ACTOR) == 6
    assert stack.index.get_record(dataset="site-b", path=key.split("/", 2)[2]) is None
    assert stack.index.dataset_stats(name="site-b")["records"] == 11


def test_a_large_rerun_fans_out_in_batches(stack: Stack, real_cohort: dict[str, Path]) -> None:
    import_into(stack, real_cohort["site-b"], "site-b")
    records = list(stack.index.records(dataset="site-b"))
    gone = [r for r in records if r.entities.get("suffix") in ("T1w", "bold")][:4]
    for record in gone:
        stack.storage.delete(key=str(record.file["key"]))  # behind the index's back
    first = reruns.RerunRequest.from_message(b'{"query": "dataset=site-b"}')
    report = reruns.rerun(first, storage=stack.storage, index=stack.index, bus=stack.bus, actor=ACTOR, batch=5)
    assert (report.selected, report.indexed) == (len(records), 0)  # nothing done inline
    assert report.published == -(-len(records) // 5)
    assert stack.index.dataset_stats(name="site-b")["records"] == len(records)
    handled = 0
    while messages := stack.bus.pull(topic=reruns.RERUNS_TOPIC, max_messages=100):
        for message_id, body in messages:
            request = reruns.RerunRequest.from_message(body)
            assert 0 < len(request.keys) <= 5
            done = reruns.rerun(request, storage=stack.storage, index=stack.index, bus=stack.bus, actor=ACTOR)
            assert done.published == 0  # a batch never fans out again
            handled += done.indexed
            stack.bus.ack(message_ids=[message_id])
    assert handled == len(records)
    assert stack.index.dataset_stats(name="site-b")["records"] == len(records) - len(gone)


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"suffix=T1w", "not JSON"),
        (b'{"q": 1}', "must be a JSON object like"),
        (b'{"v": 2, "query": "suffix=T1w"}', "version 2 is not 1"),
        (b'{"query": "x", "keys": "datasets/a/b"}', '"keys" must be a list'),
        (b'{"query": "x", "keys": ["datasets/../etc/passwd"]}', ".."),
    ],
)
def test_bad_rerun_messages(body: bytes, message: str) -> None:
    with pytest.raises(InputError, match=message):
        reruns.RerunRequest.from_message(body)


def test_rerun_request_round_trip() -> None:
    request = reruns.RerunRequest("suffix=T1w", ("datasets/a/sub-01/anat/sub-01_T1w.nii.gz",))
    assert reruns.RerunRequest.from_message(request.to_message()) == request
