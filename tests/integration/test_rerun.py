"""``rerun``: a message with an aBIDS query re-indexes what it selects."""

from __future__ import annotations

from pathlib import Path

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
