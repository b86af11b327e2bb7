"""Strict parsing of JSON metadata files (sidecars, dataset_description.json).

Python's ``json`` module accepts what JSON does not (``NaN``, ``Infinity``), silently
keeps the last of two equal keys, and raises ``RecursionError`` on deep nesting. Each of
these would store values that print as invalid JSON, compare differently per backend or
crash an indexer, so each is an :class:`~rollerblade.errors.InputError` naming the file and
the line, as the BIDS validator reports such a file invalid.
"""

from __future__ import annotations

import json
import math
import re
from typing import Any

from rollerblade.abids.tables import decode_text
from rollerblade.errors import InputError

#: Deepest nesting of objects and arrays accepted in a metadata file. BIDS metadata is
#: at most a few levels deep; this bound keeps every later step (flattening, encoding,
#: storing in Firestore, which allows 20 levels of maps) far from recursion limits.
MAX_DEPTH = 20

_CONSTANT = re.compile(r"-?Infinity|NaN")


class _Invalid(Exception):
    def __init__(self, message: str, needle: str) -> None:
        super().__init__(message)
        self.needle = needle


def _reject_constant(name: str) -> Any:
    raise _Invalid(f"{name} is not a JSON value (write null or a number)", name)


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise _Invalid(f"{text} is out of range for a number", text)
    return value


def _int64(text: str) -> int:
    value = int(text)
    if not -(2**63) <= value < 2**63:
        raise _Invalid(f"{text} is out of range for an integer (64 bits)", text)
    return value


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise _Invalid(f"duplicate key {key!r} (each key may appear once in an object)", json.dumps(key))
        out[key] = value
    return out


def _line_of(text: str, needle: str, *, last: bool) -> int:
    """Line (1-based) of the first or last occurrence of ``needle`` in the text: a pointer
    for the user, not a parser position (the json module reports none for these cases)."""
    position = text.rfind(needle) if last else text.find(needle)
    return text.count("\n", 0, max(position, 0)) + 1


def _depth(value: Any) -> int:
    """Nesting depth without recursion (1 for a flat object)."""
    deepest, stack = 0, [(value, 1)]
    while stack:
        item, level = stack.pop()
        if isinstance(item, dict):
            children: Any = item.values()
        elif isinstance(item, list):
            children = item
        else:
            continue
        deepest = max(deepest, level)
        stack.extend((child, level + 1) for child in children)
    return deepest


def parse_json_object(data: bytes, path: str) -> dict[str, Any]:
    """The JSON object in ``data``; :class:`InputError` saying what and where otherwise."""
    text = decode_text(data, path)
    try:
        value = json.loads(
            text,
            object_pairs_hook=_unique_keys,
            parse_constant=_reject_constant,
            parse_float=_finite_float,
            parse_int=_int64,
        )
    except json.JSONDecodeError as e:
        raise InputError(f"{path}: invalid JSON at line {e.lineno} column {e.colno}: {e.msg}") from e
    except _Invalid as e:
        duplicate = e.needle.startswith('"')
        line = _line_of(text, e.needle, last=duplicate)
        if e.needle in ("NaN", "Infinity", "-Infinity") and (match := _CONSTANT.search(text)):
            line = text.count("\n", 0, match.start()) + 1
        raise InputError(f"{path}: invalid JSON at line {line}: {e}") from None
    except ValueError as e:  # an integer literal longer than Python's digit limit
        raise InputError(f"{path}: invalid JSON: {e}") from None
    except RecursionError:
        raise InputError(f"{path}: invalid JSON: nested deeper than {MAX_DEPTH} levels") from None
    if not isinstance(value, dict):
        raise InputError(f"{path}: a JSON sidecar must hold an object {{...}}, not {type(value).__name__}")
    if _depth(value) > MAX_DEPTH:
        raise InputError(f"{path}: invalid JSON: nested deeper than {MAX_DEPTH} levels")
    return value
