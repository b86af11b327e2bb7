"""A job's slice into a folder, and its outputs back into storage: what every executor does
around an Analysis, on this machine (:mod:`~rollerblade.adapters.local_exec`) or inside a
cluster's pod (``rollerblade gke stage-in`` / ``store-out``)."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

from rollerblade.ports import Storage


def stage_slice(storage: Storage, inputs: Mapping[str, str], files: Mapping[str, bytes], staged: Path) -> None:
    """Download ``inputs`` (path -> storage key) and write ``files`` under ``staged``, all
    read-only for the Analysis (directories 755, files 644)."""
    staged.mkdir(parents=True, exist_ok=True)
    for rel, key in inputs.items():
        target = inside(staged, rel)
        target.parent.mkdir(parents=True, exist_ok=True)
        storage.download(key=key, destination=str(target))
    for rel, data in files.items():
        target = inside(staged, rel)
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data)
    for path in staged.rglob("*"):
        path.chmod(0o755 if path.is_dir() else 0o644)
    staged.chmod(0o755)


def store_outputs(storage: Storage, output: Path, prefix: str) -> tuple[list[str], list[str]]:
    """Store every regular file under ``output`` at ``prefix`` + its relative path; returns
    (stored paths, problems). Symlinks are refused (they could point anywhere)."""
    stored: list[str] = []
    problems: list[str] = []
    for dirpath, dirnames, filenames in os.walk(output):
        for name in sorted(dirnames + filenames):
            full = Path(dirpath, name)
            rel = full.relative_to(output).as_posix()
            if full.is_symlink():
                problems.append(f"output {rel} is a symlink (not allowed)")
            elif name in filenames and full.is_file():
                storage.put_file(key=prefix + rel, source=str(full))
                stored.append(rel)
    return sorted(stored), problems


def inside(root: Path, path: str) -> Path:
    """``root / path``, refusing a path that leaves ``root``."""
    target = (root / path).resolve()
    if not target.is_relative_to(root.resolve()) or ".." in path.split("/"):
        raise ValueError(f"slice path {path!r} leaves the input folder")
    return target
