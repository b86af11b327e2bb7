"""mean-anat: a minimal BIDS App (https://bids-apps.neuroimaging.io) at participant level.

    run.py bids_dir output_dir participant --participant_label LABEL [LABEL ...]

Averages every T1w of each participant (across sessions, resampled by nearest voxel if
the grids differ) and writes ``sub-<label>/anat/sub-<label>_desc-mean_T1w.nii.gz``. It
knows nothing about Rollerblade: it reads a BIDS tree and writes a BIDS derivative tree,
which is what the subject-slice contract gives it.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import nibabel as nib
import numpy as np


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("bids_dir", type=Path)
    parser.add_argument("output_dir", type=Path)
    parser.add_argument("analysis_level", choices=["participant"])
    parser.add_argument("--participant_label", nargs="+", required=True)
    args = parser.parse_args()
    for label in args.participant_label:
        scans = sorted(args.bids_dir.glob(f"sub-{label}/**/anat/sub-{label}_*T1w.nii.gz"))
        if not scans:
            print(f"no T1w for sub-{label} in {args.bids_dir}", file=sys.stderr)
            return 1
        first = nib.load(scans[0])
        total = np.zeros(first.shape, dtype=np.float64)
        for scan in scans:
            data = np.asarray(nib.load(scan).dataobj, dtype=np.float64)
            crop = tuple(slice(0, min(a, b)) for a, b in zip(total.shape, data.shape, strict=False))
            total[crop] += data[crop]
        mean = (total / len(scans)).astype(np.float32)
        target = args.output_dir / f"sub-{label}" / "anat" / f"sub-{label}_desc-mean_T1w.nii.gz"
        target.parent.mkdir(parents=True, exist_ok=True)
        nib.save(nib.Nifti1Image(mean, first.affine), target)
        print(f"sub-{label}: mean of {len(scans)} T1w -> {target.relative_to(args.output_dir)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
