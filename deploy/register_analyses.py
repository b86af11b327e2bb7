"""Register every Analysis of analyses/ with the deployment, pinned to the image Cloud Build pushed.

Usage: python3 deploy/register_analyses.py DIGESTS_JSON [ANALYSES_DIR [SCRATCH_DIR]]

Run by cloudbuild.yaml (step register-analyses) with the cloud settings in the
environment (ROLLERBLADE_BACKEND=gcp, ROLLERBLADE_EXECUTOR=gke, ...). DIGESTS_JSON maps
``analyses/<name>`` to ``REGISTRY/analyses/<name>@sha256:...``. An ``analysis.yaml`` that
builds its image (``image: {build: ...}``) is copied to SCRATCH_DIR/<name> with
``image: {ref: <that digest>}`` instead, and ``rollerblade analysis register`` runs on the
copy: the registered spec names the exact image in Artifact Registry, and nothing is
built twice. An Analysis whose image is already a ``ref`` is registered as it is.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import yaml


def pinned(doc: dict[str, Any], digests: dict[str, str]) -> dict[str, Any]:
    """The analysis.yaml document with a built image replaced by its pushed digest."""
    image = doc.get("image")
    if not (isinstance(image, dict) and "build" in image):
        return doc
    key = f"analyses/{doc['name']}"
    if key not in digests:
        raise SystemExit(f"{key} builds its image but Cloud Build pushed none: add its image step to cloudbuild.yaml")
    if "@sha256:" not in digests[key]:
        raise SystemExit(f"{key}: {digests[key]!r} is not an image digest (REGISTRY/NAME@sha256:...)")
    return {**doc, "image": {"ref": digests[key]}}


def prepare(folder: Path, digests: dict[str, str], scratch: Path) -> Path:
    """The folder to register: ``folder`` itself, or a copy whose image is pinned."""
    doc = yaml.safe_load((folder / "analysis.yaml").read_text())
    new = pinned(doc, digests)
    if new is doc:
        return folder
    target = scratch / folder.name
    shutil.rmtree(target, ignore_errors=True)
    shutil.copytree(folder, target)
    (target / "analysis.yaml").write_text(yaml.safe_dump(new, sort_keys=False))
    return target


def main(argv: list[str]) -> int:
    if not 1 <= len(argv) <= 3:
        print(__doc__, file=sys.stderr)
        return 2
    digests = json.loads(Path(argv[0]).read_text())
    analyses = Path(argv[1] if len(argv) > 1 else "analyses")
    scratch = Path(argv[2] if len(argv) > 2 else "/workspace/register")
    scratch.mkdir(parents=True, exist_ok=True)
    folders = sorted(p.parent for p in analyses.glob("*/analysis.yaml"))
    for folder in folders:
        subprocess.run(["rollerblade", "analysis", "register", str(prepare(folder, digests, scratch))], check=True)
    print(f"registered {len(folders)} Analyses")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
