"""Incremental indexing is order-free: any order of upload events, with duplicates and
deletions, ends in exactly the index a batch ``reindex`` builds from the same bucket."""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rollerblade.adapters import local_dir, sqlite_index
from rollerblade.demo.cohort import FULL, SITES, make_participants, write_dataset
from rollerblade.pipeline import reindex
from rollerblade.pipeline.indexing import index_object
from rollerblade.ports import Index
from rollerblade.records import ObjectEvent
from tests.conftest import ACTOR


@pytest.fixture(scope="module")
def dataset_files(tmp_path_factory: pytest.TempPathFactory) -> list[tuple[str, Path]]:
    """A small full-modality dataset: sidecars at three levels, participants, sessions."""
    root = write_dataset(
        tmp_path_factory.mktemp("order") / "ds",
        SITES[0],
        make_participants(3, np.random.default_rng(1)),
        sessions=2,
        modalities=FULL,
        images="tiny",
    )
    (root / "sub-001" / "ses-1" / "anat" / "sub-001_ses-1_acq-bad_T1.nii.gz").write_bytes(b"bad name")
    (root / "sub-002" / "ses-1" / "anat" / "sub-002_ses-1_acq-cut_T1w.nii.gz").write_bytes(b"\x1f\x8b\x08")
    return [(p.relative_to(root).as_posix(), p) for p in sorted(root.rglob("*")) if p.is_file()]


def snapshot(index: Index) -> tuple[list[object], list[object]]:
    return (
        [r.to_doc() for r in index.records(dataset="ds")],
        [m.to_doc() for m in index.metadata(dataset="ds")],
    )


@st.composite
def deliveries(draw: st.DrawFn, n: int) -> tuple[list[int], list[int], set[int]]:
    """(upload order, extra duplicate deliveries interleaved, files deleted at the end)."""
    order = draw(st.permutations(range(n)))
    duplicates = draw(st.lists(st.integers(0, n - 1), max_size=n // 2))
    deleted = draw(st.sets(st.integers(0, n - 1), max_size=6))
    return list(order), duplicates, deleted


def test_dataset_has_every_kind_of_file(dataset_files: list[tuple[str, Path]]) -> None:
    names = [rel for rel, _ in dataset_files]
    assert "participants.tsv" in names and "task-rest_bold.json" in names
    assert any(n.endswith("_sessions.tsv") for n in names) and len(names) > 150


@settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.data_too_large],
)
@given(data=st.data())
def test_any_order_with_duplicates_equals_batch_reindex(
    data: st.DataObject, dataset_files: list[tuple[str, Path]]
) -> None:
    order, duplicates, deleted = data.draw(deliveries(len(dataset_files)))
    with tempfile.TemporaryDirectory() as work:
        storage = local_dir.LocalDirStorage(Path(work) / "bucket")
        incremental = sqlite_index.SqliteIndex(":memory:")
        handled: list[ObjectEvent] = []
        for step, i in enumerate(order):
            rel, source = dataset_files[i]
            info = storage.put_file(key=f"datasets/ds/{rel}", source=str(source))
            event = ObjectEvent("created", info.key, info.generation)
            index_object(event, storage=storage, index=incremental, actor=ACTOR)
            handled.append(event)
            if step < len(duplicates):  # a redelivery of some earlier event
                index_object(handled[duplicates[step] % len(handled)], storage=storage, index=incremental, actor=ACTOR)
        for i in sorted(deleted):
            key = f"datasets/ds/{dataset_files[i][0]}"
            storage.delete(key=key)
            index_object(ObjectEvent("deleted", key), storage=storage, index=incremental, actor=ACTOR)
        for event in handled[:3]:  # stale creations delivered after the deletions
            index_object(event, storage=storage, index=incremental, actor=ACTOR)
        batch = sqlite_index.SqliteIndex(":memory:")
        reindex.reindex_dataset("ds", storage=storage, index=batch, actor=ACTOR)
        assert snapshot(incremental) == snapshot(batch)


@settings(
    max_examples=15,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.data_too_large],
)
@given(data=st.data())
def test_batches_of_events_equal_batch_reindex(data: st.DataObject, dataset_files: list[tuple[str, Path]]) -> None:
    """The same, delivered as the drain does: random batches to ``index_objects``, with
    duplicates inside a batch, objects rewritten and deleted between batches."""
    from rollerblade.pipeline.batch_indexing import index_objects

    order, duplicates, deleted = data.draw(deliveries(len(dataset_files)))
    sizes = data.draw(st.lists(st.integers(1, 64), min_size=1, max_size=8))
    with tempfile.TemporaryDirectory() as work:
        storage = local_dir.LocalDirStorage(Path(work) / "bucket")
        incremental = sqlite_index.SqliteIndex(":memory:")
        events = []
        for i in order:
            rel, source = dataset_files[i]
            info = storage.put_file(key=f"datasets/ds/{rel}", source=str(source))
            events.append(ObjectEvent("created", info.key, info.generation))
        events += [events[d] for d in duplicates]
        start, step = 0, 0
        while start < len(events):
            size = sizes[step % len(sizes)]
            index_objects(events[start : start + size], storage=storage, index=incremental, actor=ACTOR)
            start, step = start + size, step + 1
            if step == 2:  # a sidecar rewritten and a data file deleted between two batches
                storage.put_bytes(key="datasets/ds/task-rest_bold.json", data=b'{"RepetitionTime": 9}')
                gone = f"datasets/ds/{dataset_files[order[0]][0]}"
                storage.delete(key=gone)
                events += [ObjectEvent("created", "datasets/ds/task-rest_bold.json"), ObjectEvent("deleted", gone)]
        stale = [ObjectEvent("created", f"datasets/ds/{dataset_files[i][0]}") for i in sorted(deleted)]
        for i in sorted(deleted):
            storage.delete(key=f"datasets/ds/{dataset_files[i][0]}")
        index_objects(stale + events[:3], storage=storage, index=incremental, actor=ACTOR)
        batch = sqlite_index.SqliteIndex(":memory:")
        reindex.reindex_dataset("ds", storage=storage, index=batch, actor=ACTOR)
        assert snapshot(incremental) == snapshot(batch)
