"""Zip the staged Cloud Functions source reproducibly (cloudbuild.yaml, step stage-functions).

Usage: python3 deploy/zip_functions.py STAGED_DIR ZIP_PATH

``functions/package.sh`` stages main.py, requirements.txt and the rollerblade package in
STAGED_DIR; this writes them at the root of ZIP_PATH in sorted order with a fixed
timestamp and mode, so the same source always gives the same bytes. Terraform names the
uploaded object after the zip's MD5 (terraform/storage.tf), so an unchanged source keeps
its object and the functions are not redeployed on every build.
"""

from __future__ import annotations

import sys
import zipfile
from pathlib import Path

EPOCH = (1980, 1, 1, 0, 0, 0)


def zip_tree(source: Path, target: Path) -> list[str]:
    """Write every file under ``source`` into ``target``; returns the archive names."""
    names = []
    with zipfile.ZipFile(target, "w", zipfile.ZIP_DEFLATED) as archive:
        for path in sorted(p for p in source.rglob("*") if p.is_file()):
            name = path.relative_to(source).as_posix()
            info = zipfile.ZipInfo(name, EPOCH)
            info.external_attr = 0o644 << 16
            info.compress_type = zipfile.ZIP_DEFLATED
            archive.writestr(info, path.read_bytes())
            names.append(name)
    return names


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print("usage: zip_functions.py STAGED_DIR ZIP_PATH", file=sys.stderr)
        return 2
    source, target = Path(argv[0]), Path(argv[1])
    if not (source / "main.py").is_file():
        print(f"{source} has no main.py: run functions/package.sh {source} first", file=sys.stderr)
        return 1
    names = zip_tree(source, target)
    print(f"{target}: {len(names)} files")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
