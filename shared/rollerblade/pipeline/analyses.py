"""Register Analyses: validate ``analysis.yaml``, build and pin the image, store the spec."""

from __future__ import annotations

import datetime
from pathlib import Path
from typing import Any

from rollerblade.analyses.spec import AnalysisSpec, load_spec
from rollerblade.errors import NotFound
from rollerblade.ports import Catalog, Executor
from rollerblade.records import Actor


def register_analysis(folder: Path, *, index: Catalog, executor: Executor, actor: Actor) -> dict[str, Any]:
    """Register the Analysis in ``folder`` (its ``analysis.yaml``); returns the stored document."""
    spec = load_spec(folder / "analysis.yaml")
    digest = executor.prepare(
        folder=str(folder.resolve()),
        image_build=spec.image.build,
        image_ref=spec.image.ref,
        tag=f"rollerblade/{spec.name}:{spec.version}",
    )
    previous = index.get_analysis(name=spec.name)
    doc = {
        "name": spec.name,
        "spec": spec.to_doc(),
        "image_digest": digest,
        "executor": executor.name,
        "folder": str(folder.resolve()),
        "owner": previous["owner"] if previous else actor,
        "registered": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
    }
    index.put_analysis(name=spec.name, doc=doc)
    return doc


def get_analysis(name: str, *, index: Catalog) -> tuple[AnalysisSpec, dict[str, Any]]:
    doc = index.get_analysis(name=name)
    if doc is None:
        known = ", ".join(a["name"] for a in index.analyses()) or "none registered yet"
        raise NotFound("analysis", f"{name} (registered: {known})")
    return AnalysisSpec.from_doc(doc["spec"]), doc
