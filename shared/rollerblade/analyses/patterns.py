"""Derivative file name patterns built from the source's entities.

``sub-{sub}[_ses-{ses}]_desc-brain_mask.nii.gz`` renders to
``sub-01_ses-1_desc-brain_mask.nii.gz`` for a source with ``sub=01, ses=1`` and to
``sub-01_desc-brain_mask.nii.gz`` without a session: a ``[...]`` group is kept only when
every ``{key}`` inside it has a value. ``{key}`` outside a group is required.
A pattern without ``/`` is placed in the source's folder (``sub-01/[ses-1/]anat/``).
"""

from __future__ import annotations

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

    def group(match: re.Match[str]) -> str:
        names = _FIELD.findall(match.group(1))
        return match.group(1) if all(values.get(n) for n in names) else ""

    kept = _GROUP.sub(group, pattern)

    def field(match: re.Match[str]) -> str:
        value = values.get(match.group(1))
        if not value:
            raise PatternError(f"output pattern {pattern!r} needs {{{match.group(1)}}}, which the source does not have")
        return value

    return _FIELD.sub(field, kept)


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
