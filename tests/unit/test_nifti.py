"""NIfTI header facts from real images, and clear errors for broken files."""

from __future__ import annotations

import gzip
from pathlib import Path

import nibabel as nib
import pytest

from rollerblade.abids.nifti import HEAD_BYTES, ImageError, header_facts
from rollerblade.demo import sources

NIBABEL_DATA = Path(nib.__file__).parent / "tests" / "data"


def facts_of(data: bytes, name: str) -> dict[str, object]:
    extension = ".nii.gz" if name.endswith(".gz") else ".nii"
    return header_facts(path=name, extension=extension, size=len(data), head=data[:HEAD_BYTES], tail=data[-4:])


def test_real_bold_run() -> None:
    facts = facts_of(sources.example_bold().read_bytes(), "bold.nii.gz")
    assert facts["shape"] == [128, 96, 24, 2]
    assert facts["voxel_size"] == [2.0, 2.0, 2.199999]
    assert facts["nt"] == 2 and facts["ndim"] == 4 and facts["dtype"] == "int16"
    assert facts["tr"] == pytest.approx(2000.0)  # the header really says 2000 with units "sec"
    assert facts["orientation"] == "LAS"


def test_big_endian_anatomical_and_nifti2() -> None:
    anat = facts_of((NIBABEL_DATA / "anatomical.nii").read_bytes(), "anatomical.nii")
    assert anat["shape"] == [33, 41, 25] and anat["nifti_version"] == 1 and "tr" not in anat
    two = facts_of((NIBABEL_DATA / "example_nifti2.nii.gz").read_bytes(), "x.nii.gz")
    assert two["nifti_version"] == 2 and two["shape"] == [32, 20, 12, 2]


def test_colin27_with_skull() -> None:
    facts = facts_of(sources.colin27().read_bytes(), "ch2.nii.gz")
    assert facts["shape"] == [181, 217, 181] and facts["voxel_size"] == [1.0, 1.0, 1.0]
    assert facts["dtype"] == "uint8" and facts["orientation"] == "RAS"


def test_empty_file() -> None:
    with pytest.raises(ImageError, match=r"x.nii: empty file \(0 bytes\)"):
        header_facts(path="x.nii", extension=".nii", size=0, head=b"", tail=b"")


def test_truncated_uncompressed() -> None:
    data = (NIBABEL_DATA / "anatomical.nii").read_bytes()[:5000]
    with pytest.raises(ImageError, match="anatomical.nii: truncated: 5000 bytes, the header needs"):
        facts_of(data, "anatomical.nii")


def test_truncated_gzip() -> None:
    data = sources.mni_t1().read_bytes()[:20000]
    with pytest.raises(ImageError, match="truncated or corrupt: gzip trailer says"):
        facts_of(data, "t1.nii.gz")


def test_not_nifti() -> None:
    with pytest.raises(ImageError, match="not a NIfTI file"):
        facts_of(b"hello world, this is text" * 40, "x.nii")
    with pytest.raises(ImageError, match="not a gzip file"):
        facts_of(b"hello world, this is text" * 40, "x.nii.gz")
    with pytest.raises(ImageError, match="not a NIfTI file"):
        facts_of(gzip.compress(b"\x00" * 2000), "x.nii.gz")
