"""Bad input gets a clear error and loses nothing: each broken file is stored, indexed
with an error saying what and where, and every other file of the import is indexed."""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path

from rollerblade.pipeline import querying
from rollerblade.stack import Stack
from tests.conftest import ACTOR
from tests.integration.conftest import import_into

Copy = Callable[[Path], Path]

T1 = "sub-001/ses-1/anat/sub-001_ses-1_T1w.nii.gz"


def data_files(root: Path) -> int:
    return sum(
        1
        for p in root.rglob("*")
        if p.is_file() and p.parent.name in ("anat", "func", "dwi") and not p.name.endswith(".json")
    )


def test_broken_files_are_indexed_with_their_errors(stack: Stack, real_cohort: dict[str, Path], copy_of: Copy) -> None:
    root = copy_of(real_cohort["site-a"])
    anat = root / "sub-001" / "ses-1" / "anat"
    (anat / "sub-001_ses-1_acq-empty_T1w.nii").write_bytes(b"")
    (anat / "sub-001_ses-1_acq-cut_T1w.nii.gz").write_bytes((root / T1).read_bytes()[:4000])
    (anat / "sub-001_ses-1_acq-text_T1w.nii").write_text("this is not an image\n" * 30)
    (anat / "sub-001_ses-1_T1.nii.gz").write_bytes((root / T1).read_bytes())  # unknown suffix
    (anat / "sub-001_ses-1_run-1_acq-x_T1w.nii.gz").write_bytes((root / T1).read_bytes())  # order
    expected = {
        "sub-001/ses-1/anat/sub-001_ses-1_acq-empty_T1w.nii": "empty file (0 bytes)",
        "sub-001/ses-1/anat/sub-001_ses-1_acq-cut_T1w.nii.gz": "truncated or corrupt: gzip trailer says",
        "sub-001/ses-1/anat/sub-001_ses-1_acq-text_T1w.nii": "not a NIfTI file",
    }
    warned = {  # names that break a schema rule but still read as entities
        "sub-001/ses-1/anat/sub-001_ses-1_T1.nii.gz": "unknown suffix 'T1' (did you mean T1w",
        "sub-001/ses-1/anat/sub-001_ses-1_run-1_acq-x_T1w.nii.gz": "'acq' must come before 'run'",
    }
    report = import_into(stack, root, "site-a")
    errors = dict(report.errors)
    assert set(errors) == set(expected)
    for path, message in expected.items():
        assert errors[path].startswith(path) and message in errors[path]
        record = stack.index.get_record(dataset="site-a", path=path)
        assert record is not None and record.error == errors[path]
    for path, message in warned.items():
        record = stack.index.get_record(dataset="site-a", path=path)
        assert record is not None and record.error is None and record.image["ndim"] == 3
        assert record.warning is not None and message in record.warning and record.entities["sub"] == "001"
    assert report.records == data_files(root)  # nothing else was lost
    assert querying.count_records("exists(error)", index=stack.index, actor=ACTOR) == len(expected)
    assert querying.count_records("exists(warning)", index=stack.index, actor=ACTOR) == len(warned)
    assert querying.count_records("suffix=T1 AND acq=x", index=stack.index, actor=ACTOR) == 0
    assert querying.count_records("suffix=T1w AND acq=x AND run=1", index=stack.index, actor=ACTOR) == 1
    good = stack.index.get_record(dataset="site-a", path=T1)
    assert good is not None and good.error is None and good.warning is None and good.image["ndim"] == 3


def test_invalid_json_sidecar_is_reported_and_ignored(
    stack: Stack, real_cohort: dict[str, Path], copy_of: Copy
) -> None:
    root = copy_of(real_cohort["site-a"])
    (root / "task-rest_bold.json").write_text('{"RepetitionTime": 2.0,\n "TaskName": rest}\n')
    (root / "sub-001" / "ses-1" / "anat" / "sub-001_ses-1_T1w.json").write_text("[1, 2]")
    report = import_into(stack, root, "site-a")
    errors = dict(report.errors)
    assert errors["task-rest_bold.json"] == "task-rest_bold.json: invalid JSON at line 2 column 14: Expecting value"
    assert "must hold an object" in errors["sub-001/ses-1/anat/sub-001_ses-1_T1w.json"]
    bold = next(querying.find_records("task=rest", index=stack.index, actor=ACTOR))
    assert "TaskName" not in bold.meta and "AcquisitionTime" in bold.meta  # other sidecars still apply
    assert report.records == data_files(root)


def test_ragged_and_non_utf8_tables(stack: Stack, real_cohort: dict[str, Path], copy_of: Copy) -> None:
    root = copy_of(real_cohort["site-a"])
    lines = (root / "participants.tsv").read_text().splitlines()
    lines[2] += "\textra"
    (root / "participants.tsv").write_text("\n".join(lines) + "\n")
    (root / "sub-004" / "sub-004_sessions.tsv").write_bytes("session_id\tnote\nses-1\tcaf\xe9\n".encode("latin-1"))
    report = import_into(stack, root, "site-a")
    errors = dict(report.errors)
    assert (
        errors["participants.tsv"] == "participants.tsv: line 3 has 6 values, the header has 5 (those rows are ignored)"
    )
    assert "line 2 is not UTF-8 text (byte 0xe9 at offset" in errors["sub-004/sub-004_sessions.tsv"]
    second = lines[2].split("\t")[0]
    assert querying.count_records(f"participant.participant_id={second}", index=stack.index, actor=ACTOR) == 0
    assert querying.count_records("exists(participant.age)", index=stack.index, actor=ACTOR) > 0
    assert querying.count_records("sub=004 AND exists(session.note)", index=stack.index, actor=ACTOR) == 0


def test_symlinks_leaving_the_source_are_skipped(
    stack: Stack, real_cohort: dict[str, Path], copy_of: Copy, tmp_path: Path
) -> None:
    root = copy_of(real_cohort["site-b"])
    secret = tmp_path / "secret.txt"
    secret.write_text("private")
    os.symlink(secret, root / "sub-002" / "ses-1" / "anat" / "sub-002_ses-1_acq-link_T1w.nii.gz")
    os.symlink(tmp_path, root / "sub-002" / "outside")
    inside = root / "sub-002" / "ses-1" / "anat" / "sub-002_ses-1_acq-alias_T1w.nii.gz"
    os.symlink(root / "sub-002" / "ses-1" / "anat" / "sub-002_ses-1_T1w.nii.gz", inside)
    report = import_into(stack, root, "site-b")
    skipped = dict(report.skipped)
    assert "leaves the source folder" in skipped["sub-002/ses-1/anat/sub-002_ses-1_acq-link_T1w.nii.gz"]
    assert "leaves the source folder" in skipped["sub-002/outside"]
    alias = stack.index.get_record(dataset="site-b", path="sub-002/ses-1/anat/sub-002_ses-1_acq-alias_T1w.nii.gz")
    assert alias is not None and alias.error is None  # a link inside the source is imported as a file
    assert not list(stack.storage.list(prefix="datasets/site-b/sub-002/outside"))


def test_events_outside_datasets_or_with_unsafe_keys_are_ignored(stack: Stack) -> None:
    from rollerblade.pipeline.indexing import index_object
    from rollerblade.records import ObjectEvent

    for key in ("other/file.txt", "datasets/../x/y", "datasets/ds", "/etc/passwd"):
        outcome = index_object(ObjectEvent("created", key), storage=stack.storage, index=stack.index, actor=ACTOR)
        assert outcome.action == "ignored" and outcome.error
    assert stack.index.datasets() == []


def test_one_bad_byte_loses_one_participant(stack: Stack, real_cohort: dict[str, Path], copy_of: Copy) -> None:
    root = copy_of(real_cohort["site-a"])
    table = (root / "participants.tsv").read_bytes().split(b"\n")
    bad_id = table[2].split(b"\t")[0].decode()
    table[2] += b"\xff"
    (root / "participants.tsv").write_bytes(b"\n".join(table))
    report = import_into(stack, root, "site-a")
    assert dict(report.errors)["participants.tsv"].startswith("participants.tsv: line 3 is not UTF-8 text (byte 0xff")
    subjects = {r.entities["sub"] for r in querying.find_records("suffix=T1w", index=stack.index, actor=ACTOR)}
    with_age = querying.find_records("suffix=T1w AND exists(participant.age)", index=stack.index, actor=ACTOR)
    assert {r.entities["sub"] for r in with_age} == subjects - {bad_id.removeprefix("sub-")}


def test_hostile_sidecars_and_headers(stack: Stack, real_cohort: dict[str, Path], copy_of: Copy) -> None:
    """Each hostile file gets its own error; the import, every other file and a later
    reindex are unaffected."""
    import gzip

    import nibabel as nib

    from rollerblade.pipeline.reindex import reindex_dataset

    root = copy_of(real_cohort["site-a"])
    anat = root / "sub-001" / "ses-1" / "anat"
    (root / "sub-004" / "ses-1" / "anat" / "sub-004_ses-1_T1w.json").write_text(
        '{"a": ' + "[" * 100_000 + "]" * 100_000 + "}"
    )
    (root / "sub-007" / "ses-1" / "anat" / "sub-007_ses-1_T1w.json").write_text('{"EchoTime": NaN}')
    (anat / "sub-001_ses-1_T1w.json").write_text('{"EchoTime": 0.1,\n "EchoTime": 0.2}')
    header = nib.Nifti1Header()
    header["dim"] = [7, 32767, 32767, 32767, 32767, 32767, 32767, 32767]
    header["vox_offset"] = 352
    (anat / "sub-001_ses-1_acq-huge_T1w.nii.gz").write_bytes(gzip.compress(header.binaryblock + b"\0" * 4))
    expected = {
        "sub-004/ses-1/anat/sub-004_ses-1_T1w.json": "nested deeper than 20 levels",
        "sub-007/ses-1/anat/sub-007_ses-1_T1w.json": "line 1: NaN is not a JSON value",
        "sub-001/ses-1/anat/sub-001_ses-1_T1w.json": "line 2: duplicate key 'EchoTime'",
        "sub-001/ses-1/anat/sub-001_ses-1_acq-huge_T1w.nii.gz": "corrupt header: it claims",
    }
    report = import_into(stack, root, "site-a")
    errors = dict(report.errors)
    assert set(errors) == set(expected)
    for path, message in expected.items():
        assert message in errors[path]
    assert report.records == data_files(root)
    t1 = stack.index.get_record(dataset="site-a", path="sub-007/ses-1/anat/sub-007_ses-1_T1w.nii.gz")
    root_sidecar = json.loads((root / "T1w.json").read_text())
    assert t1 is not None and t1.meta == root_sidecar  # the NaN sidecar is ignored, the inherited one kept
    again = reindex_dataset("site-a", storage=stack.storage, index=stack.index, actor=ACTOR)
    assert dict(again.errors) == errors
