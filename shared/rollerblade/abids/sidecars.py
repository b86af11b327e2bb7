"""The BIDS inheritance principle: the effective metadata of a data file.

A sidecar ``X.json`` applies to a data file when it sits in the data file's folder or one
of its ancestor folders, has the same suffix, and its entities are a subset of the data
file's entities with the same values. Applicable sidecars are merged key by key, the one
nearest to the data file winning (BIDS specification, "The Inheritance Principle").
At the same level, the sidecar with more entities is the more specific one and wins.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Mapping
from typing import Any

from rollerblade.abids.paths import BidsPath, parse_record_path
from rollerblade.records import MetadataFile


def is_ancestor(directory: str, of: str) -> bool:
    """True when ``directory`` is in the inheritance chain of ``of`` (see :func:`ancestors`)."""
    return directory in ancestors(of)


def ancestors(directory: str) -> list[str]:
    """``"sub-01/ses-1/anat"`` -> ``["", "sub-01", "sub-01/ses-1", "sub-01/ses-1/anat"]``.

    Inside a derivative dataset (``derivatives/<analysis>/...``) the chain starts at the
    derivative dataset's root: a raw dataset's sidecars do not apply to derivatives.
    """
    if not directory:
        return [""]
    parts = directory.split("/")
    start = 2 if parts[0] == "derivatives" and len(parts) >= 2 else 0
    chain = ["/".join(parts[: i + 1]) for i in range(start, len(parts))]
    return chain if start else [""] + chain


def applies_to(sidecar: BidsPath, data: BidsPath) -> bool:
    """Whether ``sidecar`` is inherited by ``data``."""
    if sidecar.suffix != data.suffix or not is_ancestor(sidecar.directory, data.directory):
        return False
    return all(data.entities.get(k) == v for k, v in sidecar.entities.items())


@functools.lru_cache(maxsize=1 << 16)
def _parsed(path: str) -> BidsPath:
    return parse_record_path(path)


def effective_metadata(data: BidsPath, sidecars: Iterable[MetadataFile]) -> tuple[dict[str, Any], list[str]]:
    """Merge every applicable sidecar; return (metadata, paths of the sidecars used, far to near).

    Sidecars whose JSON could not be parsed (``error`` set) contribute nothing.
    """
    applicable = _applicable(data, sidecars)
    merged: dict[str, Any] = {}
    for _, content in applicable:
        merged.update(content)
    return merged, [path for path, _ in applicable]


def inherited_from(data: BidsPath, sidecars: Iterable[MetadataFile]) -> dict[str, str]:
    """For each key of the effective metadata, the path of the sidecar its value comes from."""
    return {key: path for path, content in _applicable(data, sidecars) for key in content}


def _applicable(data: BidsPath, sidecars: Iterable[MetadataFile]) -> list[tuple[str, Mapping[str, Any]]]:
    """(path, content) of the sidecars ``data`` inherits, far to near (the merge order)."""
    applicable: list[tuple[int, int, str, Mapping[str, Any]]] = []
    for doc in sidecars:
        if doc.kind != "sidecar" or doc.error is not None or not isinstance(doc.content, dict):
            continue
        parsed = _parsed(doc.path)
        if applies_to(parsed, data):
            depth = 0 if not parsed.directory else parsed.directory.count("/") + 1
            applicable.append((depth, len(parsed.entities), doc.path, doc.content))
    applicable.sort(key=lambda item: (item[0], item[1], item[2]))
    return [(path, content) for _, _, path, content in applicable]
