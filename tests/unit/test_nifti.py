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


def _forged(header: nib.Nifti1Header | nib.Nifti2Header, body: int = 64) -> bytes:
    """A gzip'd NIfTI whose header was edited after the fact, as a hostile file would be."""
    return gzip.compress(header.binaryblock + b"\x00" * (int(header["vox_offset"]) - header.sizeof_hdr + body))


def test_absurd_dimensions_are_corrupt_not_indexed() -> None:
    one = nib.Nifti1Header()
    one.set_data_dtype("float64")
    one["dim"] = [7, 32767, 32767, 32767, 32767, 32767, 32767, 32767]  # 32767**7 voxels
    one["vox_offset"] = 352
    with pytest.raises(ImageError, match=r"x.nii.gz: corrupt header: it claims \d+ bytes of image data"):
        facts_of(_forged(one), "x.nii.gz")
    two = nib.Nifti2Header()
    two.set_data_dtype("uint8")
    two["dim"] = [3, 2**62, 1, 1, 1, 1, 1, 1]
    two["vox_offset"] = 544
    with pytest.raises(ImageError, match="corrupt header: it claims 4611686018427388448 bytes"):
        facts_of(_forged(two), "x.nii.gz")
    raw = two.binaryblock + b"\x00" * 64
    with pytest.raises(ImageError, match="truncated: 604 bytes, the header needs 4611686018427388448"):
        facts_of(raw, "x.nii")


def test_size_beyond_4gib_checks_the_trailer_modulo() -> None:
    """ISIZE is the size mod 2**32: the trailer of a 5 GiB image is checked, not skipped."""
    header = nib.Nifti1Header()
    header.set_data_dtype("uint8")
    header["dim"] = [3, 32767, 32767, 5, 1, 1, 1, 1]
    header["vox_offset"] = 352
    needed = 352 + 32767 * 32767 * 5
    assert needed > 2**32
    head = gzip.compress(header.binaryblock + b"\x00" * 4)[:HEAD_BYTES]
    good_tail = (needed % 2**32).to_bytes(4, "little")
    facts = header_facts(path="big.nii.gz", extension=".nii.gz", size=10_000_000, head=head, tail=good_tail)
    assert facts["shape"] == [32767, 32767, 5]
    with pytest.raises(ImageError, match="truncated or corrupt: gzip trailer says 352"):
        header_facts(
            path="big.nii.gz", extension=".nii.gz", size=10_000_000, head=head, tail=(352).to_bytes(4, "little")
        )


@pytest.mark.parametrize("bad", [float("nan"), float("inf")])
def test_non_finite_voxel_sizes(bad: float) -> None:
    header = nib.Nifti1Header()
    header.set_data_dtype("uint8")
    header["dim"] = [3, 4, 4, 4, 1, 1, 1, 1]
    header["pixdim"] = [1, 1.0, bad, 1.0, 1, 1, 1, 1]
    header["vox_offset"] = 352
    with pytest.raises(ImageError, match="voxel sizes .* are not all finite numbers"):
        facts_of(_forged(header), "x.nii.gz")
