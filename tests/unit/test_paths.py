"""Path parsing against the official schema: every generated file parses, bad names say why."""

from __future__ import annotations

from pathlib import Path

import pytest

from rollerblade.abids.paths import parse_path, split_extension
from rollerblade.abids.schema import vocabulary
from rollerblade.errors import BidsNameError


def test_every_file_of_a_full_cohort_parses(full_cohort: dict[str, Path]) -> None:
    kinds: dict[str, int] = {}
    for root in full_cohort.values():
        for path in root.rglob("*"):
            if path.is_file():
                parsed = parse_path(path.relative_to(root).as_posix())
                kinds[parsed.kind] = kinds.get(parsed.kind, 0) + 1
    assert set(kinds) == {"data", "sidecar", "participants", "participants_json", "sessions", "description", "document"}
    assert kinds["participants"] == 3 and kinds["description"] == 3
    # 4 participants per site x 2 sessions x 11 data files, plus dwi .nii.gz/.bval/.bvec at site-a
    assert kinds["data"] == 3 * 4 * 2 * 11 + 4 * 2 * 3


def test_entities_datatype_suffix_extension() -> None:
    parsed = parse_path("sub-01/ses-pre/func/sub-01_ses-pre_task-rest_acq-mb4_dir-AP_run-02_echo-1_bold.nii.gz")
    assert parsed.kind == "data"
    assert parsed.entities == {
        "sub": "01",
        "ses": "pre",
        "task": "rest",
        "acq": "mb4",
        "dir": "AP",
        "run": "02",
        "echo": "1",
    }
    assert (parsed.datatype, parsed.suffix, parsed.extension) == ("func", "bold", ".nii.gz")
    assert parsed.directory == "sub-01/ses-pre/func"


def test_entity_keys_come_from_the_schema() -> None:
    vocab = vocabulary()
    assert vocab.bids_version.startswith("1.11")
    assert vocab.entity_keys["acquisition"] == "acq" and vocab.entity_keys["ceagent"] == "ce"
    assert vocab.entity_order[:3] == ("sub", "tpl", "ses")
    parsed = parse_path("sub-01/anat/sub-01_ce-gad_rec-norm_T1w.nii.gz")
    assert parsed.entities == {"sub": "01", "ce": "gad", "rec": "norm"}


def test_multi_part_and_directory_extensions() -> None:
    assert split_extension("sub-01_T1w.nii.gz", vocabulary()) == ("sub-01_T1w", ".nii.gz")
    assert split_extension("sub-01_physio.tsv.gz", vocabulary()) == ("sub-01_physio", ".tsv.gz")
    member = parse_path("sub-01/meg/sub-01_task-rest_meg.ds/BadChannels")
    assert member.path == "sub-01/meg/sub-01_task-rest_meg.ds"
    assert member.extension == ".ds/" and member.kind == "data"


@pytest.mark.parametrize(
    ("path", "kind"),
    [
        ("dataset_description.json", "description"),
        ("participants.tsv", "participants"),
        ("participants.json", "participants_json"),
        ("README.md", "document"),
        ("CHANGES", "document"),
        ("task-rest_bold.json", "sidecar"),
        ("sub-01/sub-01_sessions.tsv", "sessions"),
        ("sub-01/sub-01_T1w.json", "sidecar"),
        ("sub-01/ses-1/sub-01_ses-1_scans.tsv", "document"),
        ("code/preprocess.py", "opaque"),
        ("sourcedata/raw.dcm", "opaque"),
        ("derivatives/fmriprep/anything.txt", "opaque"),
        ("sub-01/anat/sub-01_T1w.json", "sidecar"),
        ("notes.txt", "document"),
        ("sub-01.html", "document"),
        ("desc-aseg_dseg.tsv", "document"),
    ],
)
def test_kinds(path: str, kind: str) -> None:
    assert parse_path(path).kind == kind


@pytest.mark.parametrize(
    ("path", "message"),
    [
        ("sub-01/anat/sub-01_run-a_T1w.nii.gz", "run-a: value must match [0-9]+"),
        ("sub-01/anat/sub-01_acq-x_acq-y_T1w.nii.gz", "entity 'acq' appears twice"),
        ("sub-01/anat/sub-01_acq_T1w.nii.gz", "'acq' is not a key-value entity"),
        ("sub-01/anat/sub-01_T1w-x.nii.gz", "the name must end with a suffix"),
        ("subject01/anat/sub-01_T1w.nii.gz", "top-level folder 'subject01' must be sub-<label>"),
        ("sub-01/ses-1/anat/extra/sub-01_ses-1_T1w.nii.gz", "too deeply nested"),
    ],
)
def test_unreadable_names_say_what_and_where(path: str, message: str) -> None:
    with pytest.raises(BidsNameError) as info:
        parse_path(path)
    assert str(info.value).startswith(path.split("/.ds")[0])
    assert message in str(info.value)


@pytest.mark.parametrize(
    ("path", "entities", "message"),
    [
        ("sub-01/anat/sub-01_T1.nii.gz", {"sub": "01", "suffix": "T1"}, "unknown suffix 'T1' (did you mean T1w"),
        (
            "sub-01/anat/sub-01_run-1_acq-x_T1w.nii.gz",
            {"sub": "01", "run": "1", "acq": "x"},
            "'acq' must come before 'run'",
        ),
        ("sub-01/anat/sub-02_T1w.nii.gz", {"sub": "02"}, "file name says sub-02 but it is in folder sub-01"),
        ("sub-01/ses-1/anat/sub-01_ses-2_T1w.nii.gz", {"ses": "2"}, "ses-2 but it is in folder ses-1"),
        (
            "sub-01/anatomy/sub-01_T1w.nii.gz",
            {"sub": "01", "suffix": "T1w"},
            "unknown datatype folder 'anatomy' (did you mean anat",
        ),
        ("sub-01/func/sub-01_bold.nii.gz", {"datatype": "func"}, "func/bold requires entity task"),
        (
            "sub-01/anat/sub-01_task-rest_bold.nii.gz",
            {"task": "rest", "datatype": "anat"},
            "suffix 'bold' is not allowed in a anat/ folder",
        ),
        ("sub-01/anat/sub-01_T1w.mgz", {"extension": ".mgz"}, "extension '.mgz' is not allowed for anat/T1w"),
        ("sub-01/anat/sub-01_foo-bar_T1w.nii.gz", {"foo": "bar"}, "unknown entity 'foo'"),
        (
            "sub-01/anat/sub-01_subject-01_T1w.nii.gz",
            {"subject": "01"},
            "unknown entity 'subject' (the filename key of 'subject' is 'sub')",
        ),
        ("sub-01/sub-01_T1w.nii.gz", {"sub": "01", "suffix": "T1w"}, "a data file belongs inside a datatype folder"),
        ("sub-01/figures/sub-01_desc-summary_T1w.html", {"desc": "summary"}, "unknown datatype folder 'figures'"),
        ("sub-01/func/sub-01_task-rest_log.txt", {"task": "rest", "suffix": "log"}, "unknown suffix 'log'"),
    ],
)
def test_names_breaking_a_schema_rule_keep_their_entities(path: str, entities: dict[str, str], message: str) -> None:
    parsed = parse_path(path)
    assert parsed.kind == "data"
    assert entities.items() <= parsed.all_entities().items()
    assert any(message in warning for warning in parsed.warnings), parsed.warnings


@pytest.mark.parametrize(
    "path",
    [
        # fMRIPrep / sMRIPrep outputs: allowed by the schema's derivative rules
        "sub-01/anat/sub-01_desc-preproc_T1w.nii.gz",
        "sub-01/anat/sub-01_space-MNI152NLin2009cAsym_res-2_desc-brain_mask.nii.gz",
        "sub-01/anat/sub-01_space-MNI152NLin2009cAsym_label-GM_probseg.nii.gz",
        "sub-01/anat/sub-01_dseg.nii.gz",
        "sub-01/func/sub-01_task-rest_space-MNI152NLin2009cAsym_desc-preproc_bold.nii.gz",
        "sub-01/func/sub-01_task-rest_space-MNI152NLin2009cAsym_desc-brain_mask.nii.gz",
    ],
)
def test_derivative_names_are_clean(path: str) -> None:
    parsed = parse_path(path)
    assert parsed.kind == "data" and parsed.warnings == (), parsed.warnings


def test_fmriprep_names_the_schema_does_not_define_yet() -> None:
    """BIDS 1.11's schema has no ``xfm``/``timeseries`` suffix nor ``from``/``to`` entities
    (they are in derivative proposals); such files are indexed by their entities, with a
    warning that says exactly which rule they break."""
    xfm = parse_path("sub-01/anat/sub-01_from-T1w_to-MNI152NLin2009cAsym_mode-image_xfm.h5")
    assert xfm.all_entities() == {
        "sub": "01",
        "from": "T1w",
        "to": "MNI152NLin2009cAsym",
        "mode": "image",
        "datatype": "anat",
        "suffix": "xfm",
        "extension": ".h5",
    }
    assert xfm.warnings[0].startswith("unknown suffix 'xfm'") and "unknown entity 'from'" in xfm.warnings
    confounds = parse_path("sub-01/func/sub-01_task-rest_desc-confounds_timeseries.tsv")
    assert confounds.warnings == ("unknown suffix 'timeseries'",)
