"""Derivative file name patterns built from the source's entities.

``sub-{sub}[_ses-{ses}]_desc-brain_mask.nii.gz`` renders to
``sub-01_ses-1_desc-brain_mask.nii.gz`` for a source with ``sub=01, ses=1`` and to
``sub-01_desc-brain_mask.nii.gz`` without a session: a ``[...]`` group is kept only when
every ``{key}`` inside it has a value. ``{key}`` outside a group is required.
A pattern without ``/`` is placed in the source's folder (``sub-01/[ses-1/]anat/``).
"""

from __future__ import annotations

import functools
import re
from collections.abc import Mapping

from rollerblade.abids.schema import vocabulary
from rollerblade.errors import InputError

_GROUP = re.compile(r"\[([^\[\]]*)\]")
_FIELD = re.compile(r"\{([A-Za-z_]+)\}")
_EXTRA_FIELDS = ("datatype", "suffix", "dataset")


class PatternError(InputError):
    """An output pattern is malformed or cannot be filled for a source."""


def check_pattern(pattern: str) -> None:
    """Raise :class:`PatternError` when ``pattern`` is not a valid output pattern."""
    if not pattern or pattern.startswith("/") or any(p in ("", ".", "..") for p in pattern.split("/")):
        raise PatternError(f"output pattern {pattern!r} must be a relative path without '.', '..' or '//'")
    flat = _GROUP.sub(lambda m: m.group(1), pattern)
    if "[" in flat or "]" in flat:
        raise PatternError(f"output pattern {pattern!r} has unbalanced or nested [ ]")
    allowed = set(vocabulary().entity_order) | set(_EXTRA_FIELDS)
    for name in _FIELD.findall(flat):
        if name not in allowed:
            raise PatternError(
                f"output pattern {pattern!r} uses unknown field {{{name}}}; use entity keys such as "
                "{sub}, {ses}, {task}, {acq}, {run}, or {datatype}, {suffix}"
            )
    if "{" in _FIELD.sub("", flat) or "}" in _FIELD.sub("", flat):
        raise PatternError(f"output pattern {pattern!r} has a stray brace")


def render(pattern: str, values: Mapping[str, str]) -> str:
    """Fill ``pattern`` from ``values``; raises :class:`PatternError` for a missing required key."""
    out = []
    for group, parts in _compiled(pattern):
        if group is not None and not all(values.get(name) for name in group):
            continue  # an optional group one of whose keys has no value
        for is_field, text in parts:
            if not is_field:
                out.append(text)
            elif value := values.get(text):
                out.append(value)
            else:
                raise PatternError(f"output pattern {pattern!r} needs {{{text}}}, which the source does not have")
    return "".join(out)


#: A pattern as pieces: (None: required, or the keys of an optional group; its parts,
#: each (is a {key}?, the key or the literal text)).
_Pieces = tuple[tuple[tuple[str, ...] | None, tuple[tuple[bool, str], ...]], ...]


@functools.lru_cache(maxsize=1024)
def _compiled(pattern: str) -> _Pieces:
    """``pattern`` split once into its pieces: rules render it for every job they plan."""
    pieces: list[tuple[tuple[str, ...] | None, tuple[tuple[bool, str], ...]]] = []
    start = 0
    for match in _GROUP.finditer(pattern):
        pieces.append((None, _parts(pattern[start : match.start()])))
        inner = _parts(match.group(1))
        pieces.append((tuple(text for is_field, text in inner if is_field), inner))
        start = match.end()
    pieces.append((None, _parts(pattern[start:])))
    return tuple(pieces)


def _parts(text: str) -> tuple[tuple[bool, str], ...]:
    parts = []
    start = 0
    for match in _FIELD.finditer(text):
        if match.start() > start:
            parts.append((False, text[start : match.start()]))
        parts.append((True, match.group(1)))
        start = match.end()
    if start < len(text):
        parts.append((False, text[start:]))
    return tuple(parts)


def derivative_path(pattern: str, values: Mapping[str, str]) -> str:
    """The output's path inside the derivative dataset."""
    name = render(pattern, values)
    if "/" in name:
        return name
    folder = [f"sub-{values['sub']}"] if values.get("sub") else []
    if values.get("ses"):
        folder.append(f"ses-{values['ses']}")
    if values.get("datatype"):
        folder.append(values["datatype"])
    return "/".join([*folder, name])
