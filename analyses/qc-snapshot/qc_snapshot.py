"""qc-snapshot: a grey-scale PNG montage of the three orthogonal mid-slices of an image.

For 4D images the first volume is shown. Intensities are windowed at the 1st-99th
percentiles. The PNG is written with zlib only (no imaging library needed).
"""

from __future__ import annotations

import json
import os
import struct
import sys
import zlib
from pathlib import Path

import nibabel as nib
import numpy as np


def png(pixels: np.ndarray) -> bytes:
    """Encode an 8-bit grey image (rows x columns) as PNG."""
    height, width = pixels.shape
    raw = b"".join(b"\x00" + pixels[row].tobytes() for row in range(height))

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(raw, 6)) + chunk(b"IEND", b"")


def montage(data: np.ndarray) -> np.ndarray:
    volume = data if data.ndim == 3 else data[..., 0]
    lo, hi = np.percentile(volume, [1, 99])
    scaled = np.clip((volume - lo) / max(hi - lo, 1e-6) * 255, 0, 255).astype(np.uint8)
    x, y, z = (s // 2 for s in scaled.shape)
    views = [np.rot90(scaled[x, :, :]), np.rot90(scaled[:, y, :]), np.rot90(scaled[:, :, z])]
    height = max(v.shape[0] for v in views)
    padded = [np.pad(v, ((0, height - v.shape[0]), (0, 2))) for v in views]
    return np.concatenate(padded, axis=1)


def main() -> int:
    job = json.loads(Path(os.environ["ROLLERBLADE_SLICE_FILE"]).read_text())
    source = job["records"][0]
    image = nib.load(Path(os.environ["ROLLERBLADE_INPUT"]) / source["path"])
    picture = montage(np.asarray(image.dataobj, dtype=np.float32))
    target = Path(os.environ["ROLLERBLADE_OUTPUT"]) / job["outputs"][0]
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_bytes(png(picture))
    print(f"{source['path']}: {picture.shape[1]}x{picture.shape[0]} montage")
    return 0


if __name__ == "__main__":
    sys.exit(main())
