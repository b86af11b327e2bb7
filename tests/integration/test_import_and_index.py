"""Importing real-image datasets: every record carries entities, inherited metadata,
typed participant and session attributes, NIfTI header facts, size and checksum."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from rollerblade.errors import AlreadyExists, InputError
from rollerblade.pipeline import querying
from rollerblade.stack import Stack
from tests.conftest import ACTOR
from tests.integration.conftest import import_into


def test_import_indexes_every_data_file(stack: Stack, real_cohort: dict[str, Path]) -> None:
    report = import_into(stack, real_cohort["site-a"], "site-a")
    files = [p for p in real_cohort["site-a"].rglob("*") if p.is_file()]
    data = [p for p in files if not p.name.endswith(".json") and p.parent.name in ("anat", "func", "dwi")]
    assert report.files == len(files) and report.errors == () and report.skipped == ()
    assert report.records == len(data)
    info = stack.index.get_dataset(name="site-a")
    assert info is not None and info.owner == ACTOR and info.description["DatasetType"] == "raw"


def test_record_contents(stack: Stack, real_cohort: dict[str, Path]) -> None:
    import_into(stack, real_cohort["site-a"], "site-a")
    path = "sub-001/ses-2/func/sub-001_ses-2_task-rest_run-01_bold.nii.gz"
    record = stack.index.get_record(dataset="site-a", path=path)
    assert record is not None and record.error is None
    assert record.entities == {
        "sub": "001",
        "ses": "2",
        "task": "rest",
        "run": "01",
        "datatype": "func",
        "suffix": "bold",
        "extension": ".nii.gz",
    }
    # inheritance: dataset-level task-rest_bold.json + the file's own sidecar
    assert record.meta["RepetitionTime"] == 2.0 and record.meta["MagneticFieldStrength"] == 3.0
    assert record.meta["TaskName"] == "rest" and record.meta["AcquisitionTime"] == "10:31:00"
    participants = (real_cohort["site-a"] / "participants.tsv").read_text().splitlines()
    row = dict(zip(participants[0].split("\t"), participants[1].split("\t"), strict=True))
    assert record.participant["participant_id"] == "sub-001" and record.participant["sex"] == row["sex"]
    assert record.participant["age"] == int(row["age"]) and isinstance(record.participant["age"], int)
    assert record.session == {"session_id": "ses-2", "age": int(row["age"]) + 2, "visit": "followup"}
    assert record.image["shape"] == [128, 96, 24, 2] and record.image["tr"] == 2.0
    assert record.image["dtype"] == "int16" and record.image["orientation"] == "LAS"
    source = real_cohort["site-a"] / path
    assert record.file["size"] == source.stat().st_size
    assert record.file["md5"] == hashlib.md5(source.read_bytes()).hexdigest()


def test_subject_level_sidecar_overrides_dataset_level(stack: Stack, real_cohort: dict[str, Path]) -> None:
    root = real_cohort["site-a"]
    overridden = sorted(p.parent.name for p in root.glob("sub-*/sub-*_task-rest_bold.json"))
    assert overridden, "the cohort must contain a subject-level sidecar"
    import_into(stack, root, "site-a")
    for record in querying.find_records("task=rest", index=stack.index, actor=ACTOR):
        expected = 0.035 if f"sub-{record.entities['sub']}" in overridden else 0.03
        assert record.meta["EchoTime"] == expected


def test_queries_across_datasets(stack: Stack, real_cohort: dict[str, Path]) -> None:
    for name, root in real_cohort.items():
        import_into(stack, root, name)
    people = {}
    for name, root in real_cohort.items():
        lines = (root / "participants.tsv").read_text().splitlines()
        for line in lines[1:]:
            pid, age, *_ = line.split("\t")
            people[(name, pid)] = None if age == "n/a" else int(age)
    query = "suffix=T1w AND meta.MagneticFieldStrength=3 AND participant.age>=40 AND participant.age<=70"
    got = sorted((r.dataset, r.entities["sub"]) for r in querying.find_records(query, index=stack.index, actor=ACTOR))
    expected = sorted(
        (ds, pid[4:])
        for (ds, pid), age in people.items()
        if ds in ("site-a", "site-c") and age is not None and 40 <= age <= 70
        for _ in range(2)
    )
    assert got == expected and got
    assert querying.count_records("datatype=dwi", index=stack.index, actor=ACTOR) == 3 * 2 * 3  # 3 subjects at site-a


def test_importing_into_an_existing_name_is_refused_and_changes_nothing(
    stack: Stack, real_cohort: dict[str, Path]
) -> None:
    import_into(stack, real_cohort["site-b"], "cohort")
    before = sorted(r.path for r in stack.index.records(dataset="cohort"))
    with pytest.raises(AlreadyExists, match="dataset already exists: cohort; choose another --dataset name"):
        import_into(stack, real_cohort["site-a"], "cohort")
    assert sorted(r.path for r in stack.index.records(dataset="cohort")) == before


def test_source_must_be_a_bids_root(stack: Stack, real_cohort: dict[str, Path]) -> None:
    with pytest.raises(InputError, match="no dataset_description.json; is this the root of a BIDS dataset"):
        import_into(stack, real_cohort["site-a"] / "sub-001", "x")
    with pytest.raises(InputError, match="invalid dataset name '../x'"):
        import_into(stack, real_cohort["site-a"], "../x")


def test_participants_json_units_are_kept(stack: Stack, real_cohort: dict[str, Path]) -> None:
    import_into(stack, real_cohort["site-a"], "site-a")
    docs = {m.path: m for m in stack.index.metadata(dataset="site-a", directories=[""])}
    expected = json.loads((real_cohort["site-a"] / "participants.json").read_text())
    assert docs["participants.json"].content == expected and expected["age"]["Units"] == "year"


def test_an_import_reports_only_its_own_dataset(stack: Stack, real_cohort: dict[str, Path]) -> None:
    """Events of another dataset waiting in the queue (a file dropped into the bucket, an
    interrupted import) are handled too, but neither counted nor reported as this one's."""
    from rollerblade.pipeline.events import OBJECTS_TOPIC
    from rollerblade.records import ObjectEvent

    bad = stack.storage.put_bytes(key="datasets/dropped/sub-01/anat/sub-01_T1w.nii.gz", data=b"not an image")
    stack.bus.publish(topic=OBJECTS_TOPIC, message=ObjectEvent("created", bad.key).to_message())
    report = import_into(stack, real_cohort["site-a"], "site-a")
    assert report.errors == ()  # the dropped dataset's broken file is not site-a's
    assert report.records == stack.index.dataset_stats(name="site-a")["records"]
    dropped = stack.index.get_record(dataset="dropped", path="sub-01/anat/sub-01_T1w.nii.gz")
    assert dropped is not None and dropped.error is not None  # but it was handled
