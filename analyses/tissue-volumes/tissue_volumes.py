"""tissue-volumes: CSF / grey / white matter segmentation and volumes of a T1w image.

Takes one session: its raw T1w and the brain-mask derivative of it (run brain-mask
first). Three-class k-means on the T1w intensities inside the mask; classes ordered by
mean intensity (CSF < GM < WM on T1w). Writes a dseg image (1 CSF, 2 GM, 3 WM) and the
volumes in mL. On the MNI152 template the volumes are within 15% of its own tissue
probability maps (tests/analyses/test_examples.py).
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import nibabel as nib
import numpy as np

LABELS = {1: "CSF", 2: "GM", 3: "WM"}


def kmeans3(values: np.ndarray, iterations: int = 30) -> np.ndarray:
    centers = np.percentile(values, [10, 50, 90]).astype(float)
    for _ in range(iterations):
        labels = np.argmin(np.abs(values[:, None] - centers[None, :]), axis=1)
        new = np.array([values[labels == k].mean() if np.any(labels == k) else centers[k] for k in range(3)])
        if np.allclose(new, centers):
            break
        centers = new
    order = np.argsort(centers)
    return np.argsort(order)[labels] + 1  # 1 = darkest class


def main() -> int:
    job = json.loads(Path(os.environ["ROLLERBLADE_SLICE_FILE"]).read_text())
    root = Path(os.environ["ROLLERBLADE_INPUT"])
    t1 = [r for r in job["records"] if r["entities"].get("suffix") == "T1w"]
    masks = [r for r in job["records"] if r["entities"].get("suffix") == "mask"]
    if len(t1) != 1 or len(masks) != 1:
        print(
            f"need one T1w and its brain-mask in the session, got {len(t1)} T1w and {len(masks)} masks; "
            "run brain-mask on these scans first",
            file=sys.stderr,
        )
        return 2
    image = nib.load(root / t1[0]["path"])
    data = np.asarray(image.dataobj, dtype=np.float32)
    mask = np.asarray(nib.load(root / masks[0]["path"]).dataobj) > 0
    labels = np.zeros(data.shape, dtype=np.uint8)
    labels[mask] = kmeans3(data[mask], int(job["params"].get("iterations", 30)))
    out = Path(os.environ["ROLLERBLADE_OUTPUT"])
    seg_path, json_path = (out / p for p in job["outputs"])
    seg_path.parent.mkdir(parents=True, exist_ok=True)
    nib.save(nib.Nifti1Image(labels, image.affine), seg_path)
    voxel_ml = float(np.prod(image.header.get_zooms()[:3])) / 1000.0
    volumes = {f"{name}VolumeML": round(float((labels == k).sum()) * voxel_ml, 2) for k, name in LABELS.items()}
    json_path.write_text(json.dumps({**volumes, "Labels": {str(k): v for k, v in LABELS.items()}}, indent=2))
    print(json.dumps(volumes))
    return 0


if __name__ == "__main__":
    sys.exit(main())
