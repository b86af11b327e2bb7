"""Metadata by reference on the SQLite index: a record points at the sidecars, participant
row and session row it inherits, stored once. A top-level sidecar change is a write to
the layers holding it, never to the records; the index stays small whatever the sidecars
weigh; and every record and query answers what the inheritance principle says."""

from __future__ import annotations

import dataclasses
import json
import shutil
import sqlite3
from collections.abc import Iterable
from pathlib import Path

import pytest

from rollerblade.abids.paths import parse_record_path
from rollerblade.adapters import sqlite_index, sqlite_layer_fields
from rollerblade.adapters.sqlite_index import SqliteIndex
from rollerblade.pipeline import importing, reindex
from rollerblade.pipeline.context import DatasetContext, refreshed
from rollerblade.pipeline.indexing import index_object
from rollerblade.query import evaluate
from rollerblade.query.fields import flatten
from rollerblade.query.parser import parse_query as parse
from rollerblade.records import MetadataFile, ObjectEvent, ScanRecord
from rollerblade.stack import Stack
from tests.conftest import ACTOR


def _import(stack: Stack, source: Path, name: str = "ds") -> None:
    importing.import_dataset(source, dataset=name, storage=stack.storage, index=stack.index, bus=stack.bus, actor=ACTOR)


def _drop(stack: Stack, rel: str, data: bytes) -> None:
    info = stack.storage.put_bytes(key=f"datasets/ds/{rel}", data=data)
    index_object(
        ObjectEvent("created", info.key, info.generation), storage=stack.storage, index=stack.index, actor=ACTOR
    )


def _expected(stack: Stack, record: ScanRecord) -> ScanRecord:
    """The record as the inheritance principle makes it from every stored metadata file
    (the domain's own builder, with no index in between)."""
    context = DatasetContext(stack.index.metadata(dataset=record.dataset))
    return refreshed(record, parse_record_path(record.path), context)


def _rows(path: str, table: str) -> list[tuple[object, ...]]:
    with sqlite3.connect(path) as db:
        return db.execute(f"SELECT * FROM {table} ORDER BY 1, 2, 3").fetchall()  # noqa: S608


def test_a_top_level_sidecar_change_rewrites_no_record(stack: Stack, full_cohort: dict[str, Path]) -> None:
    _import(stack, full_cohort["site-a"])
    index_path = str(stack.settings.index_path)
    records_before = _rows(index_path, "records")
    sidecar = json.loads((full_cohort["site-a"] / "task-rest_bold.json").read_text())
    sidecar["RepetitionTime"] = 1.234
    sidecar["SliceEncodingDirection"] = "k"
    _drop(stack, "task-rest_bold.json", json.dumps(sidecar).encode())

    assert _rows(index_path, "records") == records_before  # not one record row written
    bolds = list(stack.index.query(node=parse("suffix=bold AND task=rest")))
    hand_count = len(list((full_cohort["site-a"]).glob("sub-*/ses-*/func/*_task-rest_*bold.nii.gz")))
    assert len(bolds) == hand_count > 0
    for record in bolds:
        assert record == _expected(stack, record)
    # the new values are what queries see, for every rest run that does not override them
    assert stack.index.count(node=parse("meta.SliceEncodingDirection = k")) == hand_count
    assert stack.index.count(node=parse("meta.RepetitionTime = 1.234")) == sum(
        1 for r in bolds if r.meta.get("RepetitionTime") == 1.234
    )


def test_a_participants_row_change_rewrites_only_that_row(stack: Stack, full_cohort: dict[str, Path]) -> None:
    _import(stack, full_cohort["site-a"])
    index_path = str(stack.settings.index_path)
    layers_before = _rows(index_path, "layers")
    lines = (full_cohort["site-a"] / "participants.tsv").read_text().splitlines()
    header, first = lines[0].split("\t"), lines[1].split("\t")
    age = header.index("age")
    first[age] = "99"
    lines[1] = "\t".join(first)
    _drop(stack, "participants.tsv", ("\n".join(lines) + "\n").encode())

    changed = [a for a, b in zip(layers_before, _rows(index_path, "layers"), strict=True) if a != b]
    assert [row[3] for row in changed] == [first[0]]  # the layer of that participant only
    sub = first[0].removeprefix("sub-")
    mine = list(stack.index.query(node=parse(f"sub={sub}")))
    assert mine and all(r.participant["age"] == 99 for r in mine)
    assert stack.index.count(node=parse("participant.age = 99")) == len(mine)


def test_the_index_stays_small_whatever_the_sidecars_weigh(
    stack: Stack, full_cohort: dict[str, Path], tmp_path: Path
) -> None:
    source = tmp_path / "heavy"
    shutil.copytree(full_cohort["site-a"], source)
    heavy = {f"Key{i:05d}": "x" * 100 for i in range(10_000)}  # a 1.1 MB top-level sidecar
    (source / "task-rest_bold.json").write_text(json.dumps({**heavy, "RepetitionTime": 2.0}))
    _import(stack, source)
    text = sum(p.stat().st_size for p in source.rglob("*") if p.suffix in (".json", ".tsv"))
    with sqlite3.connect(str(stack.settings.index_path)) as db:
        (used,) = db.execute(
            "SELECT (SELECT page_count FROM pragma_page_count()) - (SELECT freelist_count FROM pragma_freelist_count())"
        ).fetchone()
        (page,) = db.execute("PRAGMA page_size").fetchone()
    bolds = stack.index.count(node=parse("suffix=bold AND task=rest"))
    assert bolds > 10
    # every rest run inherits the 1.1 MB: kept once (and once as its metadata file), not per record
    # Every rest run inherits the 1.1 MB. It is kept as its metadata file and, merged, once
    # per inheritance chain holding it (two here: the dataset's, and one subject's override
    # sidecar below it), never per record: 7.2 MB here, where a copy per record made 40 MB.
    assert used * page <= 7 * text, (used * page, text)
    assert stack.index.count(node=parse("exists(meta.Key09999)")) == bolds


def test_an_own_sidecar_null_hides_the_inherited_value(stack: Stack, full_cohort: dict[str, Path]) -> None:
    _import(stack, full_cohort["site-a"])
    bold = next(stack.index.query(node=parse("suffix=bold AND task=rest")))
    assert bold.meta.get("RepetitionTime") is not None
    own = bold.path.removesuffix(".nii.gz") + ".json"
    _drop(stack, own, json.dumps({"RepetitionTime": None, "Own": 1}).encode())
    record = stack.index.get_record(dataset="ds", path=bold.path)
    assert record == _expected(stack, record)
    assert record.meta["RepetitionTime"] is None and record.meta["Own"] == 1
    every = list(stack.index.query(node=parse("")))
    for text in ("exists(meta.RepetitionTime)", "NOT exists(meta.RepetitionTime)", "meta.Own = 1"):
        node = parse(text)
        expected = [r.path for r in every if evaluate.matches(node, flatten(r))]
        assert [r.path for r in stack.index.query(node=node)] == expected, text
        assert stack.index.count(node=node) == len(expected), text  # counts test the layers first
    assert bold.path not in [r.path for r in stack.index.query(node=parse("exists(meta.RepetitionTime)"))]


def test_a_record_computed_from_older_metadata_keeps_it_until_written_again(tmp_path: Path) -> None:
    index = SqliteIndex(tmp_path / "index.sqlite")
    sidecar = MetadataFile(
        dataset="ds", path="T1w.json", kind="sidecar", directory="", content={"FlipAngle": 9}, generation=2
    )
    index.put_metadata(files=[sidecar])
    path = "sub-01/anat/sub-01_T1w.nii.gz"
    stale = ScanRecord(
        dataset="ds",
        path=path,
        entities={"sub": "01", "datatype": "anat", "suffix": "T1w", "extension": ".nii.gz"},
        meta={"FlipAngle": 8},  # what the sidecar said before a concurrent writer changed it
        participant={"age": 30},
        session={},
        image={},
        file={"generation": 1},
    )
    index.put_records(records=[stale])
    assert index.get_record(dataset="ds", path=path) == stale
    assert index.count(node=parse("meta.FlipAngle = 8")) == 1
    current = ScanRecord(**{**stale.__dict__, "meta": {"FlipAngle": 9}, "participant": {}})
    index.put_records(records=[current])  # the handler's next round
    assert index.get_record(dataset="ds", path=path) == current
    assert index.count(node=parse("meta.FlipAngle = 8")) == 0
    assert index._db.execute("SELECT count(*) FROM layers WHERE key LIKE '=%'").fetchone()[0] == 0
    index.close()


def test_an_index_of_schema_5_is_converted_on_open(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A store written before metadata by reference: every record held its metadata."""
    monkeypatch.setattr(sqlite_index, "CONVERT_PAGE", 2)  # pages, as a big store's
    path = tmp_path / "index.sqlite"
    record = ScanRecord(
        dataset="ds",
        path="sub-01/anat/sub-01_T1w.nii.gz",
        entities={"sub": "01", "datatype": "anat", "suffix": "T1w", "extension": ".nii.gz"},
        meta={"FlipAngle": 9},
        participant={"participant_id": "sub-01", "age": 30},
        session={},
        image={"ndim": 3},
        file={"generation": 1},
    )
    sidecar = {
        "dataset": "ds",
        "path": "T1w.json",
        "kind": "sidecar",
        "directory": "",
        "content": {"FlipAngle": 9},
        "error": None,
    }
    table = {"rows": {"sub-01": {"participant_id": "sub-01", "age": 30}}, "columns": ["participant_id", "age"]}
    participants = {"dataset": "ds", "path": "participants.tsv", "kind": "participants", "directory": "", "error": None}
    with sqlite3.connect(path) as db:  # the schema-5 tables this test needs, as version 5 made them
        db.executescript(
            "CREATE TABLE records (dataset TEXT NOT NULL, path TEXT NOT NULL, generation INTEGER NOT NULL,"
            " doc TEXT NOT NULL, s TEXT NOT NULL, n TEXT NOT NULL, PRIMARY KEY (dataset, path));"
            "CREATE TABLE metadata (dataset TEXT NOT NULL, path TEXT NOT NULL, directory TEXT NOT NULL,"
            " doc TEXT NOT NULL, PRIMARY KEY (dataset, path)); PRAGMA user_version=5;"
        )
        runs = [
            dataclasses.replace(record, path=f"sub-01/anat/sub-01_run-{run}_T1w.nii.gz", entities=entities)
            for run in range(1, 6)
            for entities in [{**record.entities, "run": str(run)}]
        ]
        for one in [record, *runs]:
            row = ("ds", one.path, json.dumps(one.to_doc()))
            db.execute("INSERT INTO records VALUES (?, ?, 1, ?, '{}', '{}')", row)
        for doc in ({**sidecar, "generation": 1}, {**participants, "content": table, "generation": 1}):
            db.execute("INSERT INTO metadata VALUES ('ds', ?, '', ?)", (doc["path"], json.dumps(doc)))
    index = SqliteIndex(path)
    assert list(index.records(dataset="ds")) == sorted([record, *runs], key=lambda r: r.path)
    assert index.count(node=parse("meta.FlipAngle = 9 AND participant.age = 30")) == 6
    # every record points at the stored sidecar and participants row, none holds a copy
    assert index._db.execute("SELECT count(*) FROM records WHERE m IS NULL OR p IS NULL").fetchone()[0] == 0
    index.put_metadata(files=[MetadataFile(**{**sidecar, "content": {"FlipAngle": 7}, "generation": 2})])
    changed = index.get_record(dataset="ds", path=record.path)
    assert changed is not None and changed.meta == {"FlipAngle": 7}
    index.close()


def _field_rows(db: sqlite3.Connection) -> list[tuple[object, ...]]:
    """What ``layer_fields`` must hold, worked out in Python from the layers themselves:
    every key of each layer's text view, its text if short, its number form."""
    rows = []
    for layer, dataset, s, n in db.execute("SELECT id, dataset, s, n FROM layers"):
        texts, numbers = json.loads(s), json.loads(n)
        for field, text in texts.items():
            kept = text if text is not None and len(text) <= sqlite_layer_fields.FIELD_TEXT_KEPT else None
            rows.append((field, dataset, layer, kept, numbers.get(field)))
    return sorted(rows, key=repr)


def _same_counts(index: SqliteIndex, texts: Iterable[str]) -> None:
    every = [flatten(r) for r in index.query(node=parse(""))]
    for text in texts:
        node = parse(text)
        assert index.count(node=node) == sum(evaluate.matches(node, f) for f in every), text


#: Counts that test inherited fields: every namespace, short and long texts, numbers, NOT.
LAYERED = (
    "meta.RepetitionTime < 2.5",
    "NOT meta.RepetitionTime = 2",
    "exists(meta.SliceTiming)",
    "meta.SliceTiming ~ '[0,*'",
    "meta.Manufacturer IN (Siemens, GE)",
    "participant.age > 50",
    "session.visit = followup",
    "dataset = ds AND meta.EchoTime > 0.03",
)


def test_the_fields_of_each_layer_follow_every_change(stack: Stack, full_cohort: dict[str, Path]) -> None:
    """``layer_fields`` is kept by triggers: after an import, changed, added and removed
    sidecars, a changed participants row, a reindex and a deleted dataset, it holds
    exactly each layer's fields, and counts read through it answer like the reference."""
    db = sqlite3.connect(str(stack.settings.index_path))
    _import(stack, full_cohort["site-a"])
    _import(stack, full_cohort["site-b"], "other")
    assert _rows_of(db) == _field_rows(db) and len(_field_rows(db)) > 100
    _same_counts(stack.index, LAYERED)

    sidecar = json.loads((full_cohort["site-a"] / "task-rest_bold.json").read_text())
    notes = "Resting state, eyes open; " * 4  # longer than layer_fields keeps: read from the layer
    changed = {**sidecar, "RepetitionTime": 1.0, "New": "x", "Notes": notes}
    _drop(stack, "task-rest_bold.json", json.dumps(changed).encode())
    bold = next(stack.index.query(node=parse("dataset = ds AND suffix=bold AND task=rest")))
    own = bold.path.removesuffix(".nii.gz") + ".json"
    _drop(stack, own, json.dumps({"RepetitionTime": 3.0}).encode())  # an own sidecar added
    lines = (full_cohort["site-a"] / "participants.tsv").read_text().splitlines()
    header, first = lines[0].split("\t"), lines[1].split("\t")
    first[header.index("age")] = "99"
    _drop(stack, "participants.tsv", ("\n".join([lines[0], "\t".join(first), *lines[2:]]) + "\n").encode())
    assert _rows_of(db) == _field_rows(db)
    assert db.execute("SELECT count(*) FROM layer_fields WHERE field = 'meta.Notes' AND s IS NULL").fetchone()[0]
    changes = ("meta.New = x", "meta.RepetitionTime = 3", "participant.age = 99", "meta.Notes ~ '*eyes open*'")
    _same_counts(stack.index, (*LAYERED, *changes))
    assert stack.index.count(node=parse("meta.Notes ~ '*eyes open*'")) > 0

    stack.storage.delete(key=f"datasets/ds/{own}")  # the own sidecar removed again
    index_object(ObjectEvent("deleted", f"datasets/ds/{own}"), storage=stack.storage, index=stack.index, actor=ACTOR)
    reindex.reindex_dataset("other", storage=stack.storage, index=stack.index, actor=ACTOR)
    assert _rows_of(db) == _field_rows(db)
    _same_counts(stack.index, (*LAYERED, "meta.RepetitionTime = 3"))

    stack.index.delete_dataset(name="ds")
    assert db.execute("SELECT count(*) FROM layer_fields WHERE dataset = 'ds'").fetchone()[0] == 0
    _import(stack, full_cohort["site-c"], "third")  # its layers may take the deleted ones' ids
    assert _rows_of(db) == _field_rows(db)
    _same_counts(stack.index, LAYERED)
    db.close()


def _rows_of(db: sqlite3.Connection) -> list[tuple[object, ...]]:
    return sorted(db.execute("SELECT * FROM layer_fields").fetchall(), key=repr)


def test_an_index_of_schema_7_gets_the_fields_of_its_layers_on_open(stack: Stack, full_cohort: dict[str, Path]) -> None:
    _import(stack, full_cohort["site-a"])
    path = str(stack.settings.index_path)
    stack.index.close()
    with sqlite3.connect(path) as db:  # what schema 7 had: no layer_fields, no triggers, no extension column
        for trigger in ("insert", "update", "delete"):
            db.execute(f"DROP TRIGGER layer_fields_{trigger}")
        db.execute("DROP TABLE layer_fields")
        db.execute("ALTER TABLE records DROP COLUMN extension")
        db.execute("PRAGMA user_version=7")
    index = SqliteIndex(path)
    db = sqlite3.connect(path)
    assert _rows_of(db) == _field_rows(db) and _rows_of(db)
    _same_counts(index, (*LAYERED, "extension=.nii.gz", "task=rest AND NOT extension=.json"))
    assert index.count(node=parse("extension=.nii.gz")) > 0
    # records written after the upgrade get their extension too
    first = next(index.query(node=parse("extension=.nii.gz")))
    renamed = first.path.replace(".nii.gz", ".nii")
    moved = dataclasses.replace(first, path=renamed, entities={**first.entities, "extension": ".nii"})
    index.put_records(records=[moved])
    _same_counts(index, ("extension=.nii", "extension=.nii.gz"))
    assert index.count(node=parse("extension=.nii")) == 1
    db.close()
    index.close()
