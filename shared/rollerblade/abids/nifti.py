"""NIfTI header facts read from the first bytes of a file, never loading voxels.

The index stores what a query needs (shape, voxel size, TR, units, dtype, orientation) and
a clear error when the file is not a usable NIfTI: 0 bytes, not NIfTI, or truncated (the
file, or the uncompressed size stored in the gzip trailer, is shorter than the header says
the voxel data needs).
"""

from __future__ import annotations

import io
import math
import struct
import zlib
from typing import Any

import nibabel as nib
import numpy as np

from rollerblade.errors import InputError

#: Bytes to fetch from the start of a file: enough for a NIfTI-2 header plus gzip framing.
HEAD_BYTES = 8192
#: Bytes to fetch from the end of a ``.nii.gz``: the gzip trailer (CRC32, ISIZE).
TAIL_BYTES = 4

#: Bytes past the voxel data tolerated in a .nii.gz (some tools pad); more means corrupt.
_SLACK = 1 << 20
#: Deflate cannot compress better than about 1032:1, so a .nii.gz of S bytes holds at most
#: this many times S bytes of data (RFC 1951; zlib's technical details).
_MAX_DEFLATE_RATIO = 1032

_TIME_SCALE = {"sec": 1.0, "msec": 1e-3, "usec": 1e-6}


class ImageError(InputError):
    """A file with a NIfTI extension whose header cannot be used."""


def is_nifti(extension: str) -> bool:
    return extension in (".nii", ".nii.gz")


def _decompressed_head(head: bytes, path: str) -> bytes:
    try:
        return zlib.decompressobj(wbits=31).decompress(head, 1024)
    except zlib.error as e:
        raise ImageError(f"{path}: not a gzip file ({e}); a .nii.gz must be gzip-compressed") from e


def _header(raw: bytes, path: str) -> Any:
    if len(raw) < 348:
        raise ImageError(f"{path}: truncated: {len(raw)} bytes, a NIfTI header needs 348")
    for fmt in ("<i", ">i"):
        sizeof_hdr = struct.unpack(fmt, raw[:4])[0]
        if sizeof_hdr == 348:
            klass: Any = nib.Nifti1Header
            break
        if sizeof_hdr == 540:
            klass = nib.Nifti2Header
            break
    else:
        raise ImageError(f"{path}: not a NIfTI file (header size field is {raw[:4].hex()}, expected 348 or 540)")
    try:
        # nibabel's own battery of checks costs more than the rest of indexing; the checks
        # that matter for the facts (dimensions, data type, sizes) are done by the caller.
        header = klass.from_fileobj(io.BytesIO(raw[:540]), check=False)
        dims = header["dim"]
        if not 1 <= int(dims[0]) <= 7 or any(int(d) < 1 for d in dims[1 : int(dims[0]) + 1]):
            raise ValueError(f"invalid dimensions {list(dims)}")
        header.get_data_dtype()
    except Exception as e:  # nibabel raises several types for bad headers
        raise ImageError(f"{path}: unreadable NIfTI header: {e}") from e
    return header


def header_facts(*, path: str, extension: str, size: int, head: bytes, tail: bytes) -> dict[str, Any]:
    """Facts from the file's first :data:`HEAD_BYTES` and last :data:`TAIL_BYTES` bytes."""
    if size == 0:
        raise ImageError(f"{path}: empty file (0 bytes)")
    raw = _decompressed_head(head, path) if extension == ".nii.gz" else head
    header = _header(raw, path)
    shape = [int(d) for d in header.get_data_shape()]
    dtype = np.dtype(header.get_data_dtype())
    offset = max(int(header["vox_offset"]), 352 if isinstance(header, nib.Nifti1Header) else 544)
    needed = offset + math.prod(shape) * dtype.itemsize  # Python integers: no overflow
    if extension == ".nii.gz":
        if needed > size * _MAX_DEFLATE_RATIO + _SLACK:
            raise ImageError(
                f"{path}: corrupt header: it claims {needed} bytes of image data, more than a "
                f"{size}-byte gzip file can hold"
            )
        # ISIZE, the last 4 bytes of a gzip stream, is the uncompressed size mod 2**32. A cut
        # stream ends in arbitrary bytes instead: far too small or far too large.
        stored = struct.unpack("<I", tail[-4:])[0] if len(tail) >= 4 else 0
        if not 0 <= (stored - needed) % 2**32 <= _SLACK:
            raise ImageError(
                f"{path}: truncated or corrupt: gzip trailer says {stored} uncompressed bytes "
                f"(mod 2**32), the header needs {needed}"
            )
    elif size < needed:
        raise ImageError(f"{path}: truncated: {size} bytes, the header needs {needed}")
    zooms = [float(z) for z in header.get_zooms()]
    if not all(math.isfinite(z) for z in zooms):
        raise ImageError(f"{path}: corrupt header: voxel sizes {zooms} are not all finite numbers")
    space_unit, time_unit = header.get_xyzt_units()
    facts: dict[str, Any] = {
        "nifti_version": 2 if isinstance(header, nib.Nifti2Header) else 1,
        "ndim": len(shape),
        "shape": shape,
        "voxel_size": [round(z, 6) for z in zooms[:3]],
        "dtype": dtype.name,
        "space_unit": space_unit,
        "time_unit": time_unit,
    }
    for name, value in zip(("nx", "ny", "nz", "nt"), shape, strict=False):
        facts[name] = value
    for name, zoom in zip(("vx", "vy", "vz"), zooms, strict=False):
        facts[name] = round(zoom, 6)
    if len(shape) >= 4 and len(zooms) >= 4:
        facts["tr"] = round(zooms[3] * _TIME_SCALE.get(time_unit, 1.0), 6)
    facts["orientation"] = orientation(header.get_best_affine())
    return facts


_AXES = (("L", "R"), ("P", "A"), ("I", "S"))


def orientation(affine: np.ndarray) -> str | None:
    """Axis codes (``RAS``, ``LAS`` ...) of the world direction each voxel axis points to most.

    The same answer as ``nibabel.aff2axcodes`` for the affines scanners write (no SVD,
    ~50x faster); ``None`` for a degenerate affine.
    """
    rotation = np.asarray(affine, dtype=float)[:3, :3]
    if not np.isfinite(rotation).all():
        return None
    codes = []
    used: set[int] = set()
    for column in rotation.T:
        strengths = np.abs(column)
        world = int(np.argmax(strengths))
        if strengths[world] == 0 or world in used:
            return None
        used.add(world)
        codes.append(_AXES[world][1] if column[world] > 0 else _AXES[world][0])
    return "".join(codes)
