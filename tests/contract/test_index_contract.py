"""The Index contract: records, metadata and datasets round-trip, and every query of the
corpus answers exactly what the reference evaluator answers over the same records."""

from __future__ import annotations

import dataclasses
import random
from collections.abc import Iterator
from pathlib import Path

import pytest

from rollerblade.adapters import local_dir, sqlite_index
from rollerblade.pipeline import reindex
from rollerblade.ports import Index
from rollerblade.query.evaluate import matches
from rollerblade.query.fields import flatten
from rollerblade.query.parser import parse_query
from rollerblade.records import Actor, DatasetInfo, MetadataFile, ScanRecord
from tests.query_corpus import CORPUS


@pytest.fixture(scope="module")
def cohort_records(
    full_cohort: dict[str, Path], tmp_path_factory: pytest.TempPathFactory
) -> tuple[list[ScanRecord], list[MetadataFile]]:
    """Records and metadata of the full cohort, built once by the batch indexer."""
    work = tmp_path_factory.mktemp("records")
    storage = local_dir.LocalDirStorage(work / "bucket")
    idx = sqlite_index.SqliteIndex(":memory:")
    for name, root in full_cohort.items():
        for path in sorted(root.rglob("*")):
            if path.is_file():
                storage.put_file(key=f"datasets/{name}/{path.relative_to(root).as_posix()}", source=str(path))
        # two broken objects per dataset, so that error records are part of every contract
        storage.put_bytes(key=f"datasets/{name}/sub-001/anat/sub-001_T1.nii.gz", data=b"bad name")
        storage.put_bytes(key=f"datasets/{name}/sub-001/anat/sub-001_acq-cut_T1w.nii.gz", data=b"\x1f\x8b" + b"0" * 50)
        reindex.reindex_dataset(name, storage=storage, index=idx, actor=Actor("t"))
    records = [r for name in full_cohort for r in idx.records(dataset=name)]
    metadata = [m for name in full_cohort for m in idx.metadata(dataset=name)]
    idx.close()
    return records, metadata


def test_record_round_trip(index: Index, cohort_records: tuple[list[ScanRecord], list[MetadataFile]]) -> None:
    records, _ = cohort_records
    index.put_records(records=records[:50])
    for record in records[:50]:
        assert index.get_record(dataset=record.dataset, path=record.path) == record
    assert index.get_record(dataset="nope", path="x") is None
    index.delete_records(keys=[(records[0].dataset, records[0].path), ("nope", "x")])
    assert index.get_record(dataset=records[0].dataset, path=records[0].path) is None


def test_records_by_prefix_in_path_order(
    index: Index, cohort_records: tuple[list[ScanRecord], list[MetadataFile]]
) -> None:
    records, _ = cohort_records
    index.put_records(records=records)
    site_a = [r.path for r in records if r.dataset == "site-a"]
    assert [r.path for r in index.records(dataset="site-a")] == sorted(site_a)
    sub = [p for p in sorted(site_a) if p.startswith("sub-001/ses-1/")]
    assert [r.path for r in index.records(dataset="site-a", prefix="sub-001/ses-1/")] == sub and sub
    # LIKE wildcards in a prefix are literal
    assert list(index.records(dataset="site-a", prefix="sub_001")) == []


@pytest.mark.parametrize("text", CORPUS)
def test_query_corpus_matches_the_reference(
    index: Index, text: str, cohort_records: tuple[list[ScanRecord], list[MetadataFile]]
) -> None:
    records, _ = cohort_records
    index.put_records(records=records)
    node = parse_query(text)
    expected = sorted((r.dataset, r.path) for r in records if matches(node, flatten(r)))
    got = [(r.dataset, r.path) for r in index.query(node=node)]
    assert got == expected
    assert index.count(node=node) == len(expected)


def test_the_corpus_is_discriminating(cohort_records: tuple[list[ScanRecord], list[MetadataFile]]) -> None:
    """Guard against a corpus whose queries all match nothing or everything."""
    records, _ = cohort_records
    sizes = [sum(matches(parse_query(t), flatten(r)) for r in records) for t in CORPUS]
    assert sum(0 < s < len(records) for s in sizes) >= len(CORPUS) - 4


def test_the_compiled_matcher_answers_like_the_reference(
    cohort_records: tuple[list[ScanRecord], list[MetadataFile]],
) -> None:
    from rollerblade.query.evaluate import matcher

    records, _ = cohort_records
    flats = [flatten(r) for r in records]
    for text in CORPUS:
        node = parse_query(text)
        assert [matcher(node)(f) for f in flats] == [matches(node, f) for f in flats], text


def test_query_limit(index: Index, cohort_records: tuple[list[ScanRecord], list[MetadataFile]]) -> None:
    records, _ = cohort_records
    index.put_records(records=records)
    assert len(list(index.query(node=parse_query("suffix=bold"), limit=3))) == 3


def test_known_fields(index: Index, cohort_records: tuple[list[ScanRecord], list[MetadataFile]]) -> None:
    records, _ = cohort_records
    index.put_records(records=records)
    assert {"meta.RepetitionTime", "participant.age", "session.visit", "image.nx", "sub"} <= index.known_fields()


def test_known_fields_per_dataset_forget_a_deleted_dataset(
    index: Index, cohort_records: tuple[list[ScanRecord], list[MetadataFile]]
) -> None:
    """What a principal's query is checked against: only the fields of the datasets it may
    read (a field only a private dataset has must not be known to others)."""
    records, _ = cohort_records
    index.put_records(records=records)
    by_dataset: dict[str, set[str]] = {}
    for record in records:
        by_dataset.setdefault(record.dataset, set()).update(flatten(record))
    names = sorted(by_dataset)
    assert len(names) >= 3 and by_dataset[names[0]] != by_dataset[names[1]]
    for name in names:
        assert index.known_fields(datasets={name}) == by_dataset[name]
    assert index.known_fields(datasets=names[:2]) == by_dataset[names[0]] | by_dataset[names[1]]
    assert index.known_fields(datasets=set()) == set()
    assert index.known_fields(datasets={"no-such-dataset"}) == set()
    index.delete_dataset(name=names[0])
    assert index.known_fields(datasets={names[0]}) == set()
    assert index.known_fields(datasets={names[0]}, fresh=True) == set()
    assert index.known_fields(datasets={names[1]}, fresh=True) == by_dataset[names[1]]


def test_metadata_by_directory(index: Index, cohort_records: tuple[list[ScanRecord], list[MetadataFile]]) -> None:
    _, metadata = cohort_records
    index.put_metadata(files=metadata)
    top = index.metadata(dataset="site-a", directories=[""])
    assert {m.path for m in top} >= {"T1w.json", "participants.tsv", "dataset_description.json"}
    assert all(m.directory == "" for m in top)
    assert len(index.metadata(dataset="site-a")) == sum(m.dataset == "site-a" for m in metadata)
    index.delete_metadata(keys=[("site-a", "T1w.json")])
    assert "T1w.json" not in {m.path for m in index.metadata(dataset="site-a", directories=[""])}


def test_replace_dataset_is_complete(index: Index, cohort_records: tuple[list[ScanRecord], list[MetadataFile]]) -> None:
    records, metadata = cohort_records
    index.put_records(records=records)
    mine = [r for r in records if r.dataset == "site-b"][:5]
    index.replace_dataset(name="site-b", records=mine, metadata=[])
    assert [r.path for r in index.records(dataset="site-b")] == sorted(r.path for r in mine)
    assert index.metadata(dataset="site-b") == []
    assert len(list(index.records(dataset="site-a"))) == sum(r.dataset == "site-a" for r in records)


def test_replace_dataset_from_a_failing_stream_replaces_nothing(
    index: Index, cohort_records: tuple[list[ScanRecord], list[MetadataFile]]
) -> None:
    """reindex hands its records over as a stream while they are built: a build that
    fails half way (a worker crash, an interrupt) must leave the dataset as it was."""
    records, metadata = cohort_records
    index.put_records(records=records)
    index.put_metadata(files=metadata)
    before = sorted(r.path for r in index.records(dataset="site-b"))
    mine = [dataclasses.replace(r, error="rebuilt") for r in records if r.dataset == "site-b"]

    def stream() -> Iterator[ScanRecord]:
        yield from mine[: len(mine) // 2]
        raise OSError("a worker died")

    with pytest.raises(OSError, match="a worker died"):
        index.replace_dataset(name="site-b", records=stream(), metadata=[])
    after = list(index.records(dataset="site-b"))
    assert sorted(r.path for r in after) == before
    assert not any(r.error == "rebuilt" for r in after)
    assert len(index.metadata(dataset="site-b")) == sum(m.dataset == "site-b" for m in metadata)
    # and a stream read to its end replaces the dataset as a list does
    index.replace_dataset(name="site-b", records=iter(mine), metadata=[])
    assert {r.path for r in index.records(dataset="site-b") if r.error == "rebuilt"} == {r.path for r in mine}


def test_datasets_and_stats(index: Index, cohort_records: tuple[list[ScanRecord], list[MetadataFile]]) -> None:
    records = [r for r in cohort_records[0] if r.error is None and r.dataset == "site-a"]
    info = DatasetInfo(
        name="site-a", owner=Actor("ana"), created="2026-01-01T00:00:00+00:00", description={"Name": "A"}
    )
    index.put_dataset(info=info)
    assert index.get_dataset(name="site-a") == info and index.datasets() == [info]
    broken = dataclasses.replace(records[0], error="broken")
    index.put_records(records=[broken, *records[1:3]])
    stats = index.dataset_stats(name=records[0].dataset)
    assert stats["records"] == 3 and stats["errors"] == 1


def test_large_results_are_complete_and_ordered(
    index: Index, cohort_records: tuple[list[ScanRecord], list[MetadataFile]]
) -> None:
    """More matches than one page of reads: every one comes back, in (dataset, path) order."""
    base = [r for r in cohort_records[0] if r.error is None][:3]
    many = [dataclasses.replace(r, path=f"{r.path}.{i:04d}") for i in range(250) for r in base]  # 750 records
    index.put_records(records=many)
    node = parse_query("suffix ~ '*'")
    got = [(r.dataset, r.path) for r in index.query(node=node)]
    assert got == sorted((r.dataset, r.path) for r in many)
    assert len(list(index.query(node=node, limit=333))) == 333
    assert index.count(node=parse_query("NOT exists(error)")) == 750


def test_refresh_never_overwrites_a_newer_or_deleted_record(index: Index) -> None:
    def record(path: str, generation: int, tr: float) -> ScanRecord:
        return ScanRecord(
            dataset="ds",
            path=path,
            entities={"sub": "01", "suffix": "bold", "extension": ".nii.gz"},
            meta={"RepetitionTime": tr},
            participant={},
            session={},
            image={},
            file={"key": f"datasets/ds/{path}", "size": 1, "md5": "x", "generation": generation},
        )

    index.put_records(records=[record("same", 5, 1.0), record("newer", 9, 1.0), record("older", 3, 1.0)])
    refreshed = [record("same", 5, 2.0), record("newer", 7, 2.0), record("older", 4, 2.0), record("gone", 1, 2.0)]
    assert index.refresh_records(records=refreshed) == 2
    assert index.get_record(dataset="ds", path="same") == refreshed[0]
    assert index.get_record(dataset="ds", path="newer") == record("newer", 9, 1.0)  # re-indexed meanwhile: kept
    assert index.get_record(dataset="ds", path="older") == refreshed[2]
    assert index.get_record(dataset="ds", path="gone") is None  # deleted meanwhile: not resurrected
    assert "meta.RepetitionTime" in index.known_fields()


def test_delete_dataset_removes_only_that_dataset(
    index: Index, cohort_records: tuple[list[ScanRecord], list[MetadataFile]]
) -> None:
    records, metadata = cohort_records
    names = sorted({r.dataset for r in records})
    for name in names:
        index.put_dataset(info=DatasetInfo(name=name, owner=Actor("t"), created="2026-01-01"))
    index.put_records(records=records)
    index.put_metadata(files=metadata)
    index.delete_dataset(name=names[0])
    assert index.get_dataset(name=names[0]) is None
    assert index.dataset_stats(name=names[0]) == {"records": 0, "errors": 0, "warnings": 0, "metadata": 0}
    assert [r for r in index.records(dataset=names[1])] == [r for r in records if r.dataset == names[1]]
    assert index.count(node=parse_query(f"dataset={names[0]}")) == 0
    index.delete_dataset(name=names[0])  # again: nothing left, no error


def test_metadata_below_a_folder(index: Index, cohort_records: tuple[list[ScanRecord], list[MetadataFile]]) -> None:
    _, metadata = cohort_records
    index.put_metadata(files=metadata)
    dataset = metadata[0].dataset
    mine = [m for m in metadata if m.dataset == dataset]
    subject = next(m.directory for m in mine if m.directory.startswith("sub-") and "/" not in m.directory)
    expected = [m for m in mine if m.directory in ("", subject) or m.directory.startswith(subject + "/")]
    got = index.metadata(dataset=dataset, directories=[""], under=subject)
    assert got == sorted(expected, key=lambda m: m.path) and len({m.directory for m in got}) > 2
    assert index.metadata(dataset=dataset, under="") == sorted(mine, key=lambda m: m.path)
    assert index.metadata(dataset=dataset, directories=[], under="sub-nobody") == []


def test_create_dataset_once_and_compare_and_set_updates(index: Index) -> None:
    first = DatasetInfo(name="ds", owner=Actor("ana"), created="2026-01-01", state="importing", claim="a")
    assert index.create_dataset(info=first) is True
    assert index.create_dataset(info=DatasetInfo(name="ds", owner=Actor("bob"), created="2026-02-02")) is False
    assert index.get_dataset(name="ds") == first
    assert index.update_dataset(name="ds", changes={"claim": "b", "lease_until": 5.5}, expect={"claim": "x"}) is False
    assert index.update_dataset(name="ds", changes={"claim": "b", "lease_until": 5.5}, expect={"claim": "a"}) is True
    assert index.update_dataset(name="ds", changes={"description": {"Name": "D"}, "state": "ready"}) is True
    got = index.get_dataset(name="ds")
    assert got is not None and (got.claim, got.lease_until, got.state, got.owner) == ("b", 5.5, "ready", "ana")
    assert got.description == {"Name": "D"}
    assert index.update_dataset(name="nope", changes={"state": "ready"}) is False
    assert index.get_dataset(name="nope") is None


def test_a_participants_table_larger_than_a_firestore_document(index: Index) -> None:
    """12,000 participants (about 2.4 MB parsed): Firestore caps a document at 1 MiB."""
    rows = {
        f"sub-{i:05d}": {"participant_id": f"sub-{i:05d}", "age": 20 + i % 60, "sex": "MF"[i % 2], "site": "s" * 120}
        for i in range(12_000)
    }
    big = MetadataFile(
        dataset="ds",
        path="participants.tsv",
        kind="participants",
        directory="",
        content={"columns": ["participant_id", "age", "sex", "site"], "rows": rows},
        generation=1,
    )
    index.put_metadata(files=[big])
    assert index.metadata(dataset="ds") == [big]
    index.put_metadata(files=[dataclasses.replace(big, generation=2)])  # rewritten, still large
    assert index.metadata(dataset="ds", directories=[""]) == [dataclasses.replace(big, generation=2)]
    small = dataclasses.replace(big, content={"columns": ["participant_id"], "rows": {}}, generation=3)
    index.put_metadata(files=[small])
    assert index.metadata(dataset="ds") == [small]
    index.delete_metadata(keys=[("ds", "participants.tsv")])
    assert index.metadata(dataset="ds") == []


def test_a_field_another_writer_just_added_is_queryable(
    index: Index, cohort_records: tuple[list[ScanRecord], list[MetadataFile]]
) -> None:
    """Adapters cache the known fields; a query naming one they miss reads past the cache."""
    from rollerblade.adapters import firestore_index
    from rollerblade.pipeline import querying

    records, _ = cohort_records
    index.put_records(records=records[:3])
    assert querying.count_records("exists(meta.RepetitionTime)", index=index, actor=Actor("t")) >= 0  # warm cache
    if isinstance(index, sqlite_index.SqliteIndex) and index.path != ":memory:":
        writer: Index = sqlite_index.SqliteIndex(index.path)
    elif isinstance(index, firestore_index.FirestoreIndex):
        writer = firestore_index.FirestoreIndex(project=index._db.project, prefix=index.prefix, emulator=True)
    else:
        writer = index  # an in-memory database has one connection
    added = dataclasses.replace(records[0], path="sub-x/anat/sub-x_T1w.nii.gz", meta={"BrandNewKey": 7})
    writer.put_records(records=[added])
    assert querying.count_records("meta.BrandNewKey=7", index=index, actor=Actor("t")) == 1


def test_job_state_changes_are_compare_and_set_under_concurrency(index: Index) -> None:
    """Two deliveries of one event move a job at most once: create_job and swap_job are
    atomic, whoever loses is told so (threads here, each a concurrent handler)."""
    import concurrent.futures
    import dataclasses

    from rollerblade.analyses.jobs import JobRecord

    job = JobRecord(
        key="k" * 64, analysis="a", version="1", dataset="ds", slice_id="sub-01", state="planned",
        image_digest="sha256:x", params={}, sources=("sub-01/anat/sub-01_T1w.nii.gz",), outputs=("o.nii.gz",),
    )  # fmt: skip
    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        created = list(pool.map(lambda _: index.create_job(job=job), range(8)))
    assert created.count(True) == 1
    running = dataclasses.replace(job, state="running", attempts=1)
    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        moved = list(pool.map(lambda _: index.swap_job(job=running, state="planned", attempts=0), range(8)))
    assert moved.count(True) == 1
    assert index.swap_job(job=dataclasses.replace(running, state="succeeded"), state="running", attempts=2) is False
    assert index.swap_job(
        job=dataclasses.replace(running, state="succeeded", tags=("final",)), state="running", attempts=1
    )
    stored = index.get_job(key=job.key)
    assert stored is not None and (stored.state, stored.attempts, stored.tags) == ("succeeded", 1, ("final",))
    assert [j.key for j in index.jobs(state="succeeded")] == [job.key]
    other = dataclasses.replace(job, key="o" * 64)
    assert index.create_jobs(jobs=[job, other, other]) == [False, True, False]  # one write, each key once
    stored_other = index.get_job(key=other.key)
    assert stored_other is not None and stored_other.state == "planned"
    assert sorted(index.get_jobs(keys=[other.key, "x" * 64, job.key, job.key])) == sorted([job.key, other.key])


def test_sqlite_slices_of_a_big_dataset_use_the_label_index(tmp_path: Path) -> None:
    """``dataset=D AND sub IN (...)`` with as many labels as the rules read at once (how
    they read a batch's slices) must search the (sub, dataset) index, not walk all of D
    on the primary key: the index keeps the planner's statistics fresh as records are
    written, and the rules ask few enough labels at a time (SQLite-only: a query plan;
    with 30 labels of these 100 participants the planner walks D)."""
    index = sqlite_index.SqliteIndex(tmp_path / "index.sqlite")
    records = [
        ScanRecord(
            dataset=name,
            path=f"sub-{s:03d}/anat/sub-{s:03d}_run-{k}_T1w.nii.gz",
            entities={"sub": f"{s:03d}", "run": str(k), "suffix": "T1w", "datatype": "anat", "extension": ".nii.gz"},
            meta={},
            participant={},
            session={},
            image={},
            file={"generation": 1},
        )  # fmt: skip
        for name in ("big", "other")
        for s in range(100)
        for k in range(25)
    ]
    assert len(records) >= sqlite_index.ANALYZE_EVERY
    index.put_records(records=records)
    from rollerblade.adapters.sqlite_query import select
    from rollerblade.pipeline.automation import _Slices
    from rollerblade.query import ast

    labels = [f"{s:03d}" for s in range(10, 10 + _Slices.BATCH)]
    node = ast.And((ast.text_equals("dataset", "big"), ast.one_of("sub", labels)))
    sql, params = select(node, "r.doc")
    plan = " ".join(row[3] for row in index._db.execute(f"EXPLAIN QUERY PLAN {sql} ORDER BY r.dataset, r.path", params))
    assert "records_sub_dataset" in plan, plan
    assert len(list(index.query(node=node))) == 25 * len(labels)
    index.close()


def test_sqlite_large_access_scopes_read_from_a_table_select_what_the_reference_does(
    tmp_path: Path, cohort_records: tuple[list[ScanRecord], list[MetadataFile]], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A user who may read many datasets has every query narrowed by ``dataset IN (...)``;
    SQLite reads a large set from a temporary table made once per set (at most
    ``SET_TABLES``, then listed in the SQL). Either way the records must be exactly those
    the reference evaluator selects (SQLite-only: its temporary tables)."""
    from rollerblade.pipeline.guard import narrow
    from rollerblade.query import ast

    records, _ = cohort_records
    base = [r for r in records if r.dataset == "site-a"][:20]
    clones = [dataclasses.replace(r, dataset=f"ds{i:02d}") for i in range(60) for r in base]
    index = sqlite_index.SqliteIndex(tmp_path / "index.sqlite")
    index.put_records(records=clones)
    monkeypatch.setattr(sqlite_index, "SET_TABLES", 3)
    rng = random.Random(5)
    names = sorted({r.dataset for r in clones})
    for _ in range(5):
        readable = rng.sample(names, rng.randint(sqlite_index.SET_TABLE_LEAST, len(names) - 1))
        for text in ("", "suffix=T1w", "NOT suffix=bold", "sub IN (001, 002) OR datatype=func"):
            node = narrow(parse_query(text) if text else ast.All(), readable)
            assert node is not None
            expected = sorted((r.dataset, r.path) for r in clones if matches(node, flatten(r)))
            assert expected and {d for d, _ in expected} <= set(readable)
            assert sorted((r.dataset, r.path) for r in index.query(node=node)) == expected, text
            assert index.count(node=node) == len(expected), text
    assert len(index._tables) == 3  # the first three sets were read from tables, the last two listed
    index.close()


def test_sqlite_counts_on_participant_fields_read_the_reference_index(
    tmp_path: Path, cohort_records: tuple[list[ScanRecord], list[MetadataFile]]
) -> None:
    """``count(participant.age>60)`` tests every record: it must scan the narrow index of
    layer references, not the records table (rows ~1.7 KB each), and read which layers
    pass from ``layer_fields``, not each record's layer (SQLite-only: a plan)."""
    from rollerblade.adapters.sqlite_query import select, selective

    records, metadata = cohort_records
    index = sqlite_index.SqliteIndex(tmp_path / "index.sqlite")
    index.put_metadata(files=metadata)
    index.put_records(records=records)
    node = parse_query("participant.age>60")
    assert not selective(node)  # what count() decides on
    sql, params = select(node, "count(*)", layered=True)
    plan = " ".join(row[3] for row in index._db.execute(f"EXPLAIN QUERY PLAN {sql}", params))
    assert "COVERING INDEX records_refs" in plan and "SEARCH f USING PRIMARY KEY (field=?)" in plan, plan
    assert "SEARCH p" not in plan, plan  # no layer joined per record
    # within an access scope too: the passing set is probed per record, never walked as
    # keys of records_refs (dataset, p) (for each of 900 datasets, each of 4,000 rows: 0.5 s)
    scoped = parse_query("dataset IN (site-a, site-b) AND participant.age>60")
    sql, params = select(scoped, "count(*)", layered=True)
    plan = " ".join(row[3] for row in index._db.execute(f"EXPLAIN QUERY PLAN {sql}", params))
    assert "COVERING INDEX records_refs (dataset=?)" in plan, plan
    assert index.count(node=scoped) == sum(matches(scoped, flatten(r)) for r in records)
    expected = sum(matches(node, flatten(r)) for r in records)
    assert 0 < index.count(node=node) == expected
    index.close()


def test_sqlite_a_scope_table_left_half_filled_does_not_widen_a_later_scope(
    tmp_path: Path, cohort_records: tuple[list[ScanRecord], list[MetadataFile]]
) -> None:
    """A scope table whose filling failed half way (an interrupt) is not registered; the
    next set given its name must not keep its rows: they would let a user read datasets
    outside their scope (SQLite-only: its temporary tables)."""
    from rollerblade.pipeline.guard import narrow
    from rollerblade.query import ast

    records, _ = cohort_records
    base = [r for r in records if r.dataset == "site-a"][:5]
    clones = [dataclasses.replace(r, dataset=f"ds{i:02d}") for i in range(40) for r in base]
    index = sqlite_index.SqliteIndex(tmp_path / "index.sqlite")
    index.put_records(records=clones)
    names = sorted({r.dataset for r in clones})
    private, readable = names[:5], names[5:]
    index._db.execute("CREATE TEMP TABLE dataset_set_0 (name TEXT PRIMARY KEY) WITHOUT ROWID")
    index._db.executemany("INSERT INTO temp.dataset_set_0 VALUES (?)", [(n,) for n in private])
    node = narrow(ast.All(), readable)
    assert node is not None
    assert {r.dataset for r in index.query(node=node)} == set(readable)
    assert index.count(node=node) == len(base) * len(readable)
    assert index._tables == {frozenset(readable): "dataset_set_0"}
    index.close()
