"""Real-world BIDS that breaks schema rules is still indexed by its entities, which agree
with pybids (the field's reference indexer): an fMRIPrep-style derivative dataset and a
raw dataset with the usual liberties. Each broken rule is a queryable warning."""

from __future__ import annotations

import json
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from rollerblade.pipeline import querying
from rollerblade.stack import Stack
from tests.conftest import ACTOR
from tests.integration.conftest import import_into

#: pybids entity names -> filename keys (where they differ).
PYBIDS_KEYS = {
    "subject": "sub",
    "session": "ses",
    "acquisition": "acq",
    "reconstruction": "rec",
    "direction": "dir",
    "ceagent": "ce",
    "tracer": "trc",
    "staining": "stain",
}
#: pybids reads these from sidecars or folders, not from the file name.
PYBIDS_EXTRA = {"datatype", "TaskName", "RepetitionTime", "SkullStripped", "Type", "fmap", "scans"}

ANAT = [
    "desc-preproc_T1w.nii.gz",
    "desc-preproc_T1w.json",
    "desc-brain_mask.nii.gz",
    "dseg.nii.gz",
    "label-GM_probseg.nii.gz",
    "label-WM_probseg.nii.gz",
    "space-MNI152NLin2009cAsym_res-2_desc-preproc_T1w.nii.gz",
    "space-MNI152NLin2009cAsym_res-2_desc-brain_mask.nii.gz",
    "space-MNI152NLin2009cAsym_res-2_label-CSF_probseg.nii.gz",
    "from-T1w_to-MNI152NLin2009cAsym_mode-image_xfm.h5",
    "from-MNI152NLin2009cAsym_to-T1w_mode-image_xfm.h5",
    "hemi-L_pial.surf.gii",
    "hemi-R_white.surf.gii",
]
FUNC = [
    "task-rest_desc-confounds_timeseries.tsv",
    "task-rest_desc-confounds_timeseries.json",
    "task-rest_space-MNI152NLin2009cAsym_res-2_desc-preproc_bold.nii.gz",
    "task-rest_space-MNI152NLin2009cAsym_res-2_desc-preproc_bold.json",
    "task-rest_space-MNI152NLin2009cAsym_res-2_desc-brain_mask.nii.gz",
    "task-rest_space-MNI152NLin2009cAsym_res-2_boldref.nii.gz",
    "task-rest_from-scanner_to-T1w_mode-image_xfm.txt",
]
FIGURES = ["desc-summary_T1w.html", "task-rest_desc-carpetplot_bold.svg", "task-rest_desc-rois_bold.svg"]


def _write(path: Path, name: str, rng: np.random.Generator) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    if name.endswith(".nii.gz"):
        shape = (6, 7, 5, 3) if "_bold" in name else (6, 7, 5)
        nib.save(nib.Nifti1Image(rng.random(shape).astype("float32"), np.diag([2.0, 2.0, 2.0, 1.0])), path)
    elif name.endswith(".json"):
        path.write_text(json.dumps({"SkullStripped": False} if "T1w" in name else {"RepetitionTime": 2.0}))
    else:
        path.write_text(f"{name}\n")


def write_fmriprep_like(root: Path, subjects: int) -> Path:
    """What fMRIPrep 23+ writes for anat + one resting-state run, names as it spells them."""
    rng = np.random.default_rng(3)
    root.mkdir(parents=True)
    (root / "dataset_description.json").write_text(
        json.dumps(
            {
                "Name": "fMRIPrep - fMRI PREProcessing workflow",
                "BIDSVersion": "1.9.0",
                "DatasetType": "derivative",
                "GeneratedBy": [{"Name": "fMRIPrep", "Version": "23.2.1"}],
            }
        )
    )
    (root / "desc-aseg_dseg.tsv").write_text("index\tname\n0\tUnknown\n2\tLeft-Cerebral-White-Matter\n")
    (root / "logs").mkdir()
    (root / "logs" / "CITATION.md").write_text("cite fMRIPrep\n")
    for n in range(1, subjects + 1):
        sub = f"sub-{n:02d}"
        (root / f"{sub}.html").write_text("<html></html>\n")
        for folder, names in (("anat", ANAT), ("func", FUNC), ("figures", FIGURES)):
            for name in names:
                _write(root / sub / folder / f"{sub}_{name}", name, rng)
    return root


def write_liberal_raw(root: Path) -> Path:
    """A raw dataset with liberties real datasets take: a task log beside the run, a scan
    beside its datatype folder, entities out of order, a misspelt suffix."""
    rng = np.random.default_rng(4)
    root.mkdir(parents=True)
    (root / "dataset_description.json").write_text(json.dumps({"Name": "liberal", "BIDSVersion": "1.9.0"}))
    (root / "participants.tsv").write_text("participant_id\tage\nsub-01\t61\nsub-02\t64\n")
    for sub in ("sub-01", "sub-02"):
        for name in (
            f"func/{sub}_task-rest_bold.nii.gz",
            f"func/{sub}_task-rest_log.txt",
            f"{sub}_T1w.nii.gz",
            f"anat/{sub}_run-1_acq-fast_T1w.nii.gz",
            f"anat/{sub}_T1W.nii.gz",
        ):
            _write(root / sub / name, name, rng)
    return root


def pybids_entities(root: Path, derivative: bool) -> dict[str, dict[str, str]]:
    from bids import BIDSLayout

    config = ["bids", "derivatives"] if derivative else ["bids"]
    layout = BIDSLayout(root, validate=False, config=config, is_derivative=derivative)
    out = {}
    for f in layout.get():
        rel = Path(f.path).relative_to(root).as_posix()
        entities = {PYBIDS_KEYS.get(k, k): str(v) for k, v in f.get_entities().items() if k not in PYBIDS_EXTRA}
        out[rel] = entities
    return out


@pytest.mark.parametrize("kind", ["fmriprep", "liberal-raw"])
def test_entities_agree_with_pybids(stack: Stack, tmp_path: Path, kind: str) -> None:
    if kind == "fmriprep":
        root = write_fmriprep_like(tmp_path / "fmriprep", subjects=3)
    else:
        root = write_liberal_raw(tmp_path / "raw")
    report = import_into(stack, root, kind)
    assert report.errors == ()  # every file read; rule breaks are warnings, not errors
    records = {r.path: r for r in stack.index.records(dataset=kind)}
    reference = pybids_entities(root, derivative=kind == "fmriprep")
    data_files = {p for p in reference if not p.endswith(".json") and p.startswith("sub-") and "/" in p}
    assert set(records) == data_files  # the same files are data, nothing lost
    for path, record in records.items():
        ours = {k: v for k, v in record.entities.items() if k != "datatype"}
        theirs = reference[path]
        shared = ours.keys() & theirs.keys()
        assert {k: ours[k] for k in shared} == {k: theirs[k] for k in shared}, path
        assert theirs.keys() <= ours.keys(), (path, theirs.keys() - ours.keys())


def test_fmriprep_outputs_are_queryable_with_their_warnings(stack: Stack, tmp_path: Path) -> None:
    root = write_fmriprep_like(tmp_path / "fmriprep", subjects=3)
    import_into(stack, root, "prep")

    def count(query: str) -> int:
        return querying.count_records(query, index=stack.index, actor=ACTOR)

    assert count("dataset=prep AND space=MNI152NLin2009cAsym AND desc=brain AND suffix=mask") == 3 * 2
    assert count("label=GM AND suffix=probseg") == 3
    assert count("suffix=bold AND desc=preproc AND meta.RepetitionTime=2") == 3
    # schema-valid derivative names carry no warning; what the schema lacks is named
    assert count("suffix=probseg AND exists(warning)") == 0
    assert count("suffix=xfm AND warning~'unknown suffix*'") == 3 * 3
    assert count("datatype=anat AND exists(warning)") == 3 * 4  # xfm x2, pial, white: suffixes BIDS 1.11 lacks
    figures = stack.index.get_record(dataset="prep", path="sub-01/figures/sub-01_desc-summary_T1w.html")
    assert figures is not None and figures.entities["desc"] == "summary" and figures.error is None
    assert figures.warning is not None and "unknown datatype folder 'figures'" in figures.warning
    stats = stack.index.dataset_stats(name="prep")
    assert stats["errors"] == 0 and stats["warnings"] == count("exists(warning)")
