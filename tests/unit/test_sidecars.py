"""The inheritance principle: applicable sidecars up the tree, nearest wins key by key."""

from __future__ import annotations

from rollerblade.abids.paths import parse_path
from rollerblade.abids.sidecars import ancestors, applies_to, effective_metadata
from rollerblade.records import MetadataFile


def sidecar(path: str, content: object, error: str | None = None) -> MetadataFile:
    parsed = parse_path(path)
    return MetadataFile("ds", path, "sidecar", parsed.directory, content, 1, error)


DATA = parse_path("sub-01/ses-1/func/sub-01_ses-1_task-rest_run-01_bold.nii.gz")


def test_ancestors() -> None:
    assert ancestors("sub-01/ses-1/func") == ["", "sub-01", "sub-01/ses-1", "sub-01/ses-1/func"]
    assert ancestors("") == [""]


def test_nearest_wins_key_by_key() -> None:
    files = [
        sidecar("task-rest_bold.json", {"RepetitionTime": 2.0, "EchoTime": 0.03, "TaskName": "rest"}),
        sidecar("sub-01/sub-01_task-rest_bold.json", {"EchoTime": 0.035}),
        sidecar("sub-01/ses-1/func/sub-01_ses-1_task-rest_run-01_bold.json", {"AcquisitionTime": "09:00:00"}),
    ]
    meta, used = effective_metadata(DATA, reversed(files))
    assert meta == {"RepetitionTime": 2.0, "EchoTime": 0.035, "TaskName": "rest", "AcquisitionTime": "09:00:00"}
    assert used == [f.path for f in files]


def test_more_specific_sidecar_at_the_same_level_wins() -> None:
    files = [sidecar("bold.json", {"EchoTime": 1}), sidecar("task-rest_bold.json", {"EchoTime": 2})]
    assert effective_metadata(DATA, files)[0] == {"EchoTime": 2}


def test_sidecars_that_do_not_apply_are_ignored() -> None:
    assert not applies_to(parse_path("task-nback_bold.json"), DATA)  # other entity value
    assert not applies_to(parse_path("task-rest_sbref.json"), DATA)  # other suffix
    assert not applies_to(parse_path("sub-02/sub-02_task-rest_bold.json"), DATA)  # other folder
    assert not applies_to(parse_path("task-rest_run-02_bold.json"), DATA)
    assert applies_to(parse_path("run-01_bold.json"), DATA)


def test_an_invalid_sidecar_contributes_nothing() -> None:
    files = [sidecar("task-rest_bold.json", None, error="invalid JSON"), sidecar("bold.json", {"A": 1})]
    assert effective_metadata(DATA, files) == ({"A": 1}, ["bold.json"])


def test_the_sqlite_index_reads_sidecar_names_as_the_parser_does() -> None:
    """The index ranks sidecars by a fast split of their names; it must agree with the
    BIDS parser on every name the parser reads (and defer to it on anything unusual)."""
    from rollerblade.abids.paths import parse_record_path
    from rollerblade.adapters.sqlite_layers import _sidecar_name

    names = [
        "T1w.json",
        "task-rest_bold.json",
        "sub-01/sub-01_task-rest_acq-fast_bold.json",
        "sub-01/ses-1/func/sub-01_ses-1_task-rest_run-01_bold.json",
        "sub-01/ses-1/fmap/sub-01_ses-1_dir-AP_epi.json",
        "derivatives/mask/sub-01/anat/sub-01_space-MNI_desc-brain_mask.json",
        "sub-01/anat/sub-01_acq-x_ce-gad_rec-norm_run-2_T1w.json",
        "task-rest_acq-_bold.json",  # an empty value: left to the parser
    ]
    for name in names:
        try:
            parsed = parse_record_path(name)
        except Exception:  # noqa: BLE001 - a name the parser refuses is not a sidecar the index ranks
            continue
        assert _sidecar_name(name) == (parsed.suffix, tuple(parsed.entities.items())), name
