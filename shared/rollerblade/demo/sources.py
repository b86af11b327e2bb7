"""Where the real images live inside installed packages (see ../shared/notes/real-data.md).

Each function returns a path or raises :class:`~rollerblade.errors.NotFound` naming the
package that provides it.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

from rollerblade.errors import NotFound

COLIN27_DIR = Path("/usr/share/mricron/templates")


def _package_file(package: str, *parts: str) -> Path:
    spec = importlib.util.find_spec(package)
    if spec is None or spec.origin is None:
        raise NotFound("package", f"{package} (pip install {package})")
    path = Path(spec.origin).parent.joinpath(*parts)
    if not path.is_file():
        raise NotFound("file", str(path))
    return path


def mni_t1() -> Path:
    """MNI ICBM152 2009a T1 template (skull-stripped, 1 mm), from nilearn."""
    return _package_file("nilearn", "datasets", "data", "mni_icbm152_t1_tal_nlin_sym_09a_converted.nii.gz")


def mni_tissue(tissue: str) -> Path:
    """MNI ICBM152 grey (``gm``) or white (``wm``) matter probability map, from nilearn."""
    return _package_file("nilearn", "datasets", "data", f"mni_icbm152_{tissue}_tal_nlin_sym_09a_converted.nii.gz")


def colin27(brain_only: bool = False) -> Path:
    """Colin27 single-subject T1 with skull (``ch2``) or brain-extracted (``ch2bet``),
    from Debian ``mricron-data``."""
    path = COLIN27_DIR / ("ch2bet.nii.gz" if brain_only else "ch2.nii.gz")
    if not path.is_file():
        raise NotFound("file", f"{path} (apt-get install mricron-data)")
    return path


def example_bold() -> Path:
    """A real BOLD EPI run (128x96x24, 2 volumes), from nibabel's test data."""
    return _package_file("nibabel", "tests", "data", "example4d.nii.gz")


def example_dwi() -> tuple[Path, Path, Path]:
    """A real diffusion crop with 64 directions (.nii, .bval, .bvec), from dipy."""
    base = ("data", "files")
    return (
        _package_file("dipy", *base, "small_64D.nii"),
        _package_file("dipy", *base, "small_64D.bval"),
        _package_file("dipy", *base, "small_64D.bvec"),
    )
