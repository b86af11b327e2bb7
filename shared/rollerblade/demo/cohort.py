"""Write realistic multi-site BIDS datasets from real brain images.

Each site is one dataset with its own scanner (manufacturer, field strength, TRs), a
``participants.tsv`` (age, sex, site, group) with ``participants.json`` units,
``sessions.tsv`` per subject, and sidecars at several levels: dataset-wide
(``T1w.json``, ``task-rest_bold.json``), per subject (overrides) and per file.

``images="real"`` writes jittered copies of real images (MNI152 or Colin27 T1 with a
per-subject rigid jitter, bias field and noise; a real BOLD run; a real DWI crop).
``images="tiny"`` writes tiny valid NIfTI files with realistic headers, for trees of
100k+ files in benchmarks. Everything is deterministic for a given ``seed``.
"""

from __future__ import annotations

import dataclasses
import functools
import gzip
import json
import math
import shutil
from pathlib import Path
from typing import Any, Literal

import nibabel as nib
import numpy as np

from rollerblade.abids.schema import vocabulary
from rollerblade.demo import sources
from rollerblade.errors import NotFound

Images = Literal["real", "tiny"]


@dataclasses.dataclass(frozen=True)
class Site:
    name: str
    manufacturer: str
    model: str
    field_strength: float
    bold_tr: float
    t1_template: Literal["mni", "colin"]
    dwi: bool


SITES = (
    Site("site-a", "Siemens", "Prisma", 3.0, 2.0, "mni", True),
    Site("site-b", "GE", "Signa HDxt", 1.5, 2.5, "mni", False),
    Site("site-c", "Philips", "Achieva", 3.0, 2.0, "colin", False),
)

#: Modalities per session in the "full" layout (what benchmarks use), about 25 files.
FULL = ("T1w", "T2w", "rest", "nback", "dwi", "fmap")
#: The lighter layout of the demo and the tests.
DEMO = ("T1w", "rest", "dwi")


def _json(path: Path, content: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(content, indent=2) + "\n")


# -- real images -------------------------------------------------------------------------
@functools.cache
def _t1_base(template: str) -> tuple[np.ndarray, np.ndarray]:
    """The template T1 at 2 mm (every other voxel) and its affine."""
    if template == "colin":
        try:
            path = sources.colin27()
        except NotFound:
            path = sources.mni_t1()  # Colin27 needs Debian mricron-data; the MNI T1 stands in
    else:
        path = sources.mni_t1()
    img = nib.load(path)
    data = np.asarray(img.dataobj, dtype=np.float32)[::2, ::2, ::2]
    affine = img.affine @ np.diag([2.0, 2.0, 2.0, 1.0])
    return data, affine


def jittered_t1(template: str, rng: np.random.Generator) -> nib.Nifti1Image:
    """A per-subject T1: rigid jitter (+-3 degrees, +-2 voxels), smooth bias field, noise."""
    from scipy import ndimage

    data, affine = _t1_base(template)
    angles = np.deg2rad(rng.uniform(-3, 3, size=3))
    cx, cy, cz = (np.array(data.shape) - 1) / 2
    rx = np.array(
        [[1, 0, 0], [0, math.cos(angles[0]), -math.sin(angles[0])], [0, math.sin(angles[0]), math.cos(angles[0])]]
    )
    rz = np.array(
        [[math.cos(angles[2]), -math.sin(angles[2]), 0], [math.sin(angles[2]), math.cos(angles[2]), 0], [0, 0, 1]]
    )
    rotation = rx @ rz
    center = np.array([cx, cy, cz])
    offset = center - rotation @ center + rng.uniform(-2, 2, size=3)
    moved = ndimage.affine_transform(data, rotation, offset=offset, order=1)
    x, y, z = np.meshgrid(*(np.linspace(-1, 1, n, dtype=np.float32) for n in data.shape), indexing="ij")
    a, b, c = rng.uniform(-0.15, 0.15, size=3)
    bias = np.exp(a * x + b * y + c * z)
    noisy = moved * bias + rng.normal(0, 0.02 * float(data.max()), size=data.shape).astype(np.float32)
    out = np.clip(noisy, 0, None).astype(np.int16)
    img = nib.Nifti1Image(out, affine)
    img.header.set_xyzt_units("mm", "sec")
    return img


def bold_image(tr: float, rng: np.random.Generator) -> nib.Nifti1Image:
    src = nib.load(sources.example_bold())
    data = np.asarray(src.dataobj, dtype=np.float32)
    data = data * rng.uniform(0.95, 1.05) + rng.normal(0, 5, size=data.shape).astype(np.float32)
    img = nib.Nifti1Image(np.clip(data, 0, None).astype(np.int16), src.affine)
    img.header.set_xyzt_units("mm", "sec")
    img.header.set_zooms((*src.header.get_zooms()[:3], tr))
    return img


def dwi_image(rng: np.random.Generator) -> nib.Nifti1Image:
    path, _, _ = sources.example_dwi()
    src = nib.load(path)
    data = np.asarray(src.dataobj, dtype=np.float32)
    data = data + rng.normal(0, 1, size=data.shape).astype(np.float32)
    img = nib.Nifti1Image(np.clip(data, 0, None).astype(np.int16), src.affine)
    img.header.set_xyzt_units("mm", "sec")
    return img


# -- tiny images ---------------------------------------------------------------------------
@functools.cache
def tiny_nifti(shape: tuple[int, ...], zooms: tuple[float, ...]) -> bytes:
    """Gzipped bytes of a small valid NIfTI-1 with the given shape and zooms."""
    img = nib.Nifti1Image(np.zeros(shape, dtype=np.int16), np.diag([*zooms[:3], 1.0]))
    img.header.set_zooms(zooms)
    img.header.set_xyzt_units("mm", "sec")
    img.header["vox_offset"] = 352
    raw = img.header.binaryblock + b"\0" * 4 + np.zeros(shape, dtype=np.int16).tobytes()
    return gzip.compress(raw, compresslevel=1, mtime=0)


# -- writing -----------------------------------------------------------------------------
class _Writer:
    def __init__(self, root: Path, site: Site, images: Images, rng: np.random.Generator) -> None:
        self.root, self.site, self.images, self.rng = root, site, images, rng

    def nifti(self, path: Path, kind: str) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        if self.images == "tiny":
            shapes = {
                "anat": ((4, 4, 4), (1.0, 1.0, 1.0)),
                "bold": ((4, 4, 3, 5), (3.0, 3.0, 3.0, self.site.bold_tr)),
                "dwi": ((4, 4, 3, 7), (2.0, 2.0, 2.0, 1.0)),
                "fmap": ((4, 4, 3), (3.0, 3.0, 3.0)),
            }
            path.write_bytes(tiny_nifti(*shapes[kind]))
            return
        if kind == "anat":
            img = jittered_t1(self.site.t1_template, self.rng)
        elif kind == "bold":
            img = bold_image(self.site.bold_tr, self.rng)
        elif kind == "dwi":
            img = dwi_image(self.rng)
        else:
            data, affine = _t1_base(self.site.t1_template)
            img = nib.Nifti1Image(data[::2, ::2, ::2].astype(np.int16), affine @ np.diag([2.0, 2.0, 2.0, 1.0]))
        nib.save(img, path)


def write_dataset(
    root: Path,
    site: Site,
    participants: list[dict[str, Any]],
    *,
    sessions: int = 2,
    modalities: tuple[str, ...] = DEMO,
    images: Images = "real",
    seed: int = 0,
) -> Path:
    """Write one site's BIDS dataset at ``root``; returns ``root``."""
    rng = np.random.default_rng(seed)
    writer = _Writer(root, site, images, rng)
    root.mkdir(parents=True, exist_ok=True)
    _json(
        root / "dataset_description.json",
        {
            "Name": f"Rollerblade demo cohort, {site.name}",
            "BIDSVersion": vocabulary().bids_version,
            "DatasetType": "raw",
            "License": "CC0",
            "Authors": ["Rollerblade demo generator"],
        },
    )
    (root / "README.md").write_text(
        f"# {site.name}\n\nSynthetic cohort built from real template images "
        "(MNI152 from nilearn, Colin27 from mricron-data, BOLD from nibabel, DWI from dipy) "
        "with per-subject jitter. Not real participants.\n"
    )
    scanner = {
        "Manufacturer": site.manufacturer,
        "ManufacturersModelName": site.model,
        "MagneticFieldStrength": site.field_strength,
    }
    _json(root / "T1w.json", {**scanner, "RepetitionTime": 2.3, "EchoTime": 0.00298, "FlipAngle": 9})
    if "T2w" in modalities:
        _json(root / "T2w.json", {**scanner, "RepetitionTime": 3.2, "EchoTime": 0.565})
    n_slices = 3 if images == "tiny" else 24
    slice_timing = [round(i * site.bold_tr / n_slices, 4) for i in range(n_slices)]
    bold = {**scanner, "RepetitionTime": site.bold_tr, "EchoTime": 0.03, "FlipAngle": 77}
    if site.name != "site-b":
        bold["SliceTiming"] = slice_timing
    _json(root / "task-rest_bold.json", {**bold, "TaskName": "rest"})
    if "nback" in modalities:
        _json(root / "task-nback_bold.json", {**bold, "TaskName": "nback"})
    if "dwi" in modalities and site.dwi:
        _json(root / "dwi.json", {**scanner, "RepetitionTime": 8.4, "EchoTime": 0.085, "PhaseEncodingDirection": "j-"})
    _write_participants(root, site, participants)
    _, bval, bvec = sources.example_dwi() if images == "real" else (None, None, None)
    for number, person in enumerate(participants):
        sub = person["participant_id"]
        if number % 3 == 1:  # a subject-level sidecar: this person was scanned with a longer TE
            _json(root / sub / f"{sub}_task-rest_bold.json", {"EchoTime": 0.035})
        session_rows = []
        for s in range(1, sessions + 1):
            ses = f"ses-{s}"
            age = "n/a" if person["age"] is None else str(person["age"] + 2 * (s - 1))
            session_rows.append(f"{ses}\t{age}\t{'baseline' if s == 1 else 'followup'}")
            base = root / sub / ses
            stem = f"{sub}_{ses}"
            writer.nifti(base / "anat" / f"{stem}_T1w.nii.gz", "anat")
            _json(base / "anat" / f"{stem}_T1w.json", {"AcquisitionTime": f"{8 + s:02d}:1{s}:00"})
            if "T2w" in modalities:
                writer.nifti(base / "anat" / f"{stem}_T2w.nii.gz", "anat")
                _json(base / "anat" / f"{stem}_T2w.json", {"AcquisitionTime": f"{8 + s:02d}:2{s}:00"})
            runs = ("01", "02") if "T2w" in modalities else ("01",)
            for run in runs:
                writer.nifti(base / "func" / f"{stem}_task-rest_run-{run}_bold.nii.gz", "bold")
                _json(
                    base / "func" / f"{stem}_task-rest_run-{run}_bold.json",
                    {"AcquisitionTime": f"{8 + s:02d}:3{run[-1]}:00"},
                )
            if "nback" in modalities:
                writer.nifti(base / "func" / f"{stem}_task-nback_bold.nii.gz", "bold")
                _json(base / "func" / f"{stem}_task-nback_bold.json", {"AcquisitionTime": f"{8 + s:02d}:40:00"})
                (base / "func" / f"{stem}_task-nback_events.tsv").write_text(
                    "onset\tduration\ttrial_type\n0.0\t20.0\tzeroback\n30.0\t20.0\ttwoback\n"
                )
            if "dwi" in modalities and site.dwi:
                writer.nifti(base / "dwi" / f"{stem}_dwi.nii.gz", "dwi")
                _json(base / "dwi" / f"{stem}_dwi.json", {"AcquisitionTime": f"{8 + s:02d}:50:00"})
                if bval is not None and bvec is not None:
                    shutil.copyfile(bval, base / "dwi" / f"{stem}_dwi.bval")
                    _write_bvec(bvec, base / "dwi" / f"{stem}_dwi.bvec")
                else:
                    (base / "dwi" / f"{stem}_dwi.bval").write_text("0 1000 1000 1000 1000 1000 1000\n")
                    (base / "dwi" / f"{stem}_dwi.bvec").write_text(
                        "0 1 0 0 0.7071 0.7071 0\n0 0 1 0 0.7071 0 0.7071\n0 0 0 1 0 0.7071 0.7071\n"
                    )
            if "fmap" in modalities:
                _write_fieldmaps(writer, base / "fmap", stem, ses, sub)
        (root / sub / f"{sub}_sessions.tsv").write_text("session_id\tage\tvisit\n" + "\n".join(session_rows) + "\n")
    return root


def _write_bvec(source: Path, target: Path) -> None:
    """dipy ships its gradient table as N rows of 3; BIDS wants 3 rows of N."""
    table = np.loadtxt(source)
    if table.shape[0] != 3:
        table = table.T
    np.savetxt(target, table, fmt="%.6f")


def _write_fieldmaps(writer: _Writer, folder: Path, stem: str, ses: str, sub: str) -> None:
    for name in ("magnitude1", "magnitude2", "phasediff"):
        writer.nifti(folder / f"{stem}_{name}.nii.gz", "fmap")
    _json(folder / f"{stem}_magnitude1.json", {"EchoTime": 0.00492})
    _json(folder / f"{stem}_magnitude2.json", {"EchoTime": 0.00738})
    _json(
        folder / f"{stem}_phasediff.json",
        {
            "EchoTime1": 0.00492,
            "EchoTime2": 0.00738,
            "IntendedFor": [f"bids::{sub}/{ses}/func/{stem}_task-rest_run-01_bold.nii.gz"],
        },
    )
    for direction, ped in (("AP", "j-"), ("PA", "j")):
        writer.nifti(folder / f"{stem}_dir-{direction}_epi.nii.gz", "fmap")
        _json(folder / f"{stem}_dir-{direction}_epi.json", {"PhaseEncodingDirection": ped, "TotalReadoutTime": 0.05})


def _write_participants(root: Path, site: Site, participants: list[dict[str, Any]]) -> None:
    lines = ["participant_id\tage\tsex\tsite\tgroup"]
    for p in participants:
        age = "n/a" if p["age"] is None else str(p["age"])
        lines.append(f"{p['participant_id']}\t{age}\t{p['sex']}\t{site.name}\t{p['group']}")
    (root / "participants.tsv").write_text("\n".join(lines) + "\n")
    _json(
        root / "participants.json",
        {
            "age": {"Description": "age at the first session", "Units": "year"},
            "sex": {"Description": "sex as reported", "Levels": {"F": "female", "M": "male"}},
            "site": {"Description": "acquisition site"},
            "group": {"Description": "study group", "Levels": {"control": "healthy control", "patient": "patient"}},
        },
    )


def make_participants(count: int, rng: np.random.Generator, *, first: int = 1) -> list[dict[str, Any]]:
    """Participants with ages 20-85 (one in 25 unknown), sex, group; deterministic."""
    people = []
    for i in range(first, first + count):
        unknown = i % 25 == 0
        people.append(
            {
                "participant_id": f"sub-{i:03d}",
                "age": None if unknown else int(rng.integers(20, 86)),
                "sex": "F" if rng.random() < 0.5 else "M",
                "group": "patient" if rng.random() < 0.4 else "control",
            }
        )
    return people


def write_cohort(
    root: Path,
    *,
    subjects: int,
    sessions: int = 2,
    modalities: tuple[str, ...] = DEMO,
    images: Images = "real",
    seed: int = 0,
    sites: tuple[Site, ...] = SITES,
) -> dict[str, Path]:
    """Write ``subjects`` participants spread over ``sites``; returns {site name: dataset root}."""
    rng = np.random.default_rng(seed)
    people = make_participants(subjects, rng)
    out = {}
    for i, site in enumerate(sites):
        mine = people[i :: len(sites)]
        if mine:
            out[site.name] = write_dataset(
                root / site.name,
                site,
                mine,
                sessions=sessions,
                modalities=modalities,
                images=images,
                seed=seed + i,
            )
    return out


def file_count(path: Path) -> int:
    return sum(1 for p in path.rglob("*") if p.is_file())


__all__ = ["DEMO", "FULL", "SITES", "Site", "file_count", "make_participants", "write_cohort", "write_dataset"]
