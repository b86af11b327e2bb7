"""The example Analyses in analyses/, run in Docker on real images and checked against
ground truths: Colin27 ch2bet for brain-mask, the MNI152 tissue maps for tissue-volumes."""

from __future__ import annotations

import json
import shutil
import struct
from collections.abc import Callable
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from rollerblade.demo import sources
from rollerblade.pipeline import querying, running
from rollerblade.ports import Executor
from rollerblade.stack import Stack
from tests.analyses.conftest import ROOT
from tests.conftest import ACTOR
from tests.integration.conftest import import_into


def single_scan_dataset(tmp_path: Path, image: Path, name: str) -> Path:
    """A minimal valid BIDS dataset holding one real T1w image as sub-01."""
    root = tmp_path / name
    (root / "sub-01" / "anat").mkdir(parents=True)
    shutil.copyfile(image, root / "sub-01" / "anat" / "sub-01_T1w.nii.gz")
    (root / "dataset_description.json").write_text(json.dumps({"Name": name, "BIDSVersion": "1.10.0"}))
    (root / "participants.tsv").write_text("participant_id\tage\nsub-01\t27\n")
    return root


def run(stack: Stack, executor: Executor, name: str, query: str = "") -> running.RunReport:
    report = running.run_analysis(
        name,
        query,
        storage=stack.storage,
        index=stack.index,
        bus=stack.bus,
        executor=executor,
        actor=ACTOR,
        workdir=stack.settings.work_root,
    )
    assert not report.failed, [j.message for j in report.failed]
    return report


def register_example(stack: Stack, executor: Executor, name: str, register: Callable[..., object]) -> None:
    register(ROOT / "analyses" / name, executor)


def mask_of(stack: Stack, dataset: str, query: str, tmp_path: Path) -> nib.Nifti1Image:
    record = next(querying.find_records(query, index=stack.index, actor=ACTOR))
    target = tmp_path / Path(record.path).name
    stack.storage.download(key=record.file["key"], destination=str(target))
    return nib.load(target)


def test_brain_mask_on_colin27_matches_ch2bet(
    stack: Stack, docker_executor: Executor, tmp_path: Path, register: Callable[..., object]
) -> None:
    import_into(stack, single_scan_dataset(tmp_path, sources.colin27(), "colin"), "colin")
    register_example(stack, docker_executor, "brain-mask", register)
    run(stack, docker_executor, "brain-mask")
    mask = np.asarray(mask_of(stack, "colin", "analysis=brain-mask AND suffix=mask", tmp_path).dataobj) > 0
    truth = np.asarray(nib.load(sources.colin27(brain_only=True)).dataobj) > 0
    dice = 2 * (mask & truth).sum() / (mask.sum() + truth.sum())
    assert dice >= 0.90, f"Dice {dice:.3f}"
    record = next(querying.find_records("analysis=brain-mask", index=stack.index, actor=ACTOR))
    expected_ml = mask.sum() / 1000.0  # 1 mm voxels
    assert record.meta["BrainVolumeML"] == pytest.approx(expected_ml, rel=1e-3)


def test_tissue_volumes_match_the_mni152_maps(
    stack: Stack, docker_executor: Executor, tmp_path: Path, register: Callable[..., object]
) -> None:
    import_into(stack, single_scan_dataset(tmp_path, sources.mni_t1(), "mni"), "mni")
    # the MNI152 T1 is skull-stripped already: its brain mask is where it is non-zero
    t1 = nib.load(sources.mni_t1())
    mask_dir = tmp_path / "mask"
    mask_dir.mkdir()
    nib.save(nib.Nifti1Image((np.asarray(t1.dataobj) > 0).astype(np.uint8), t1.affine), mask_dir / "m.nii.gz")
    stack.storage.put_file(
        key="derivatives/brain-mask/mni/sub-01/anat/sub-01_desc-brain_mask.nii.gz", source=str(mask_dir / "m.nii.gz")
    )
    from rollerblade.pipeline.reindex import reindex_dataset

    reindex_dataset("mni", storage=stack.storage, index=stack.index, actor=ACTOR)
    register_example(stack, docker_executor, "tissue-volumes", register)
    run(stack, docker_executor, "tissue-volumes")
    record = next(querying.find_records("analysis=tissue-volumes AND suffix=dseg", index=stack.index, actor=ACTOR))
    voxel_ml = 1 / 1000.0
    for tissue, key in (("gm", "GMVolumeML"), ("wm", "WMVolumeML")):
        truth = np.asarray(nib.load(sources.mni_tissue(tissue)).dataobj, dtype=np.float64).sum() / 255 * voxel_ml
        assert record.meta[key] == pytest.approx(truth, rel=0.15), (tissue, record.meta[key], truth)


def test_chained_pipeline_and_bids_app_and_snapshot_on_the_cohort(
    stack: Stack,
    docker_executor: Executor,
    real_cohort: dict[str, Path],
    tmp_path: Path,
    register: Callable[..., object],
) -> None:
    import_into(stack, real_cohort["site-c"], "site-c")  # Colin27-based T1w with skull, 3 people x 2 sessions
    for name in ("brain-mask", "tissue-volumes", "mean-anat", "qc-snapshot"):
        register_example(stack, docker_executor, name, register)
    assert len(run(stack, docker_executor, "brain-mask").succeeded) == 6
    assert len(run(stack, docker_executor, "tissue-volumes").succeeded) == 6
    assert len(run(stack, docker_executor, "mean-anat").succeeded) == 3  # one job per participant
    assert len(run(stack, docker_executor, "qc-snapshot", "suffix=T1w AND NOT exists(analysis)").succeeded) == 6
    count = querying.count_records
    assert count("analysis=tissue-volumes AND meta.GMVolumeML>100", index=stack.index, actor=ACTOR) == 6
    assert count("analysis=mean-anat AND desc=mean AND exists(participant.age)", index=stack.index, actor=ACTOR) == 3
    snapshot = next(querying.find_records("analysis=qc-snapshot AND extension=.png", index=stack.index, actor=ACTOR))
    png = stack.storage.read(key=snapshot.file["key"])
    width, height = struct.unpack(">II", png[16:24])
    assert png.startswith(b"\x89PNG\r\n\x1a\n") and width > 100 and height > 50
