"""participants.tsv and sessions.tsv: typed rows keyed by participant / session id.

Values are typed the way a user expects to query them: integers and decimals become
numbers, ``n/a`` (and an empty cell) becomes null, everything else stays text. Bad rows
(ragged) are reported with their line numbers and left out; the good rows are kept.
"""

from __future__ import annotations

import re
from typing import Any

from rollerblade.errors import InputError

_INT = re.compile(r"[+-]?\d+")
_FLOAT = re.compile(r"[+-]?(\d+\.\d*|\.\d+|\d+)([eE][+-]?\d+)?")


def typed_value(text: str) -> Any:
    """``"63"`` -> 63, ``"63.5"`` -> 63.5, ``"n/a"`` -> None, ``"F"`` -> ``"F"``; an integer
    beyond 64 bits stays text (every index backend stores 64-bit integers)."""
    text = text.strip()
    if text in ("n/a", ""):
        return None
    if _INT.fullmatch(text):
        value = int(text)
        return value if -(2**63) <= value < 2**63 else text  # a 30-digit id is text, not a number
    if _FLOAT.fullmatch(text):
        return float(text)
    return text


def decode_text(data: bytes, path: str) -> str:
    """Decode UTF-8 (a BOM is dropped) or raise an error naming the file and byte offset."""
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        line = data[: e.start].count(b"\n") + 1
        raise InputError(
            f"{path}: not UTF-8 text (byte 0x{data[e.start]:02x} on line {line}, offset {e.start}); "
            "save the file as UTF-8"
        ) from e


def _lines(data: bytes, path: str) -> tuple[str, list[tuple[int, str | None, str]]]:
    """The header line and every later line as (line number, text or None, problem).

    Each line is decoded on its own, so one non-UTF-8 byte loses one row, not the table.
    """
    raw_lines = data.split(b"\n")
    header = decode_text(raw_lines[0].removesuffix(b"\r"), path)
    offset = len(raw_lines[0]) + 1
    lines: list[tuple[int, str | None, str]] = []
    for number, raw in enumerate(raw_lines[1:], start=2):
        try:
            lines.append((number, raw.removesuffix(b"\r").decode("utf-8"), ""))
        except UnicodeDecodeError as e:
            where = f"byte 0x{raw[e.start]:02x} at offset {offset + e.start}"
            lines.append((number, None, f"line {number} is not UTF-8 text ({where})"))
        offset += len(raw) + 1
    return header, lines


def parse_tsv(data: bytes, path: str, *, id_column: str) -> tuple[dict[str, Any], str | None]:
    """Parse a BIDS TSV into ``{"columns": [...], "rows": {id: {column: value}}}``.

    Returns the content and an error message (``None`` when every row was good): a ragged,
    repeated or non-UTF-8 row is left out and named by its line number. Raises
    :class:`InputError` when nothing usable is there (empty, header not UTF-8, no id column).
    """
    header, lines = _lines(data, path)
    if not header.strip():
        raise InputError(f"{path}: empty table, expected a header line with {id_column!r}")
    columns = [c.strip() for c in header.split("\t")]
    if id_column not in columns:
        raise InputError(f"{path}: header has no {id_column!r} column (columns: {', '.join(columns)})")
    id_index = columns.index(id_column)
    rows: dict[str, dict[str, Any]] = {}
    problems: list[str] = []
    typed: dict[str, Any] = {}  # cell text -> its value, shared (immutable): tables repeat values

    def value(cell: str) -> Any:
        found = typed.get(cell, typed)
        if found is typed:
            found = typed[cell] = typed_value(cell)
        return found

    for number, line, problem in lines:
        if line is None:
            problems.append(problem)
            continue
        if not line.strip():
            continue
        cells = line.split("\t")
        if len(cells) != len(columns):
            problems.append(f"line {number} has {len(cells)} values, the header has {len(columns)}")
            continue
        row_id = cells[id_index].strip()
        if row_id in rows:
            problems.append(f"line {number} repeats {id_column} {row_id!r}")
            continue
        rows[row_id] = {col: value(cell) for col, cell in zip(columns, cells, strict=True)}
        rows[row_id][id_column] = row_id
    error = f"{path}: " + "; ".join(problems) + " (those rows are ignored)" if problems else None
    return {"columns": columns, "rows": rows}, error
