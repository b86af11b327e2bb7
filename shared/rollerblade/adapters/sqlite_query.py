"""Compile an aBIDS query AST into a SQLite WHERE clause over the ``records`` table.

Each record row stores its flat query view twice: ``s`` maps every field to its text
form, ``n`` maps numeric fields to their number form (see
:mod:`rollerblade.query.fields`). Every operator of the language has an exact SQLite
equivalent, so nothing is left for Python; the commonest fields have expression indexes.
``dataset`` and ``path`` are also the table's own columns (its primary key), and text
comparisons on them are compiled on the columns: the access scope ``dataset IN (...)``
and the page cursor then walk the primary key in result order instead of sorting.
"""

from __future__ import annotations

import re
from typing import Any

from rollerblade.query import ast

#: Fields with an expression index on their text form: selective fields users filter on.
#: Each index also holds the ``dataset`` column, so a query narrowed to the datasets a
#: user may read (``suffix=T1w AND dataset IN (...)``) is answered from the index alone.
INDEXED_TEXT_FIELDS = ("suffix", "sub", "ses", "task", "datatype", "dir")
#: Fields with an expression index on their number form (``sub IN (01, 02)``, ``run=1``).
INDEXED_NUMBER_FIELDS = ("sub", "ses")

#: Fields stored as columns of ``records`` with the same text as in ``s``.
COLUMN_FIELDS = ("dataset", "path")

_SAFE_FIELD = re.compile(r"[A-Za-z0-9_.\-]+")


def json_path(field: str) -> str:
    """The JSON path literal of a flat field (``'$."meta.RepetitionTime"'``)."""
    if not _SAFE_FIELD.fullmatch(field):
        raise ValueError(f"unsafe field name {field!r}")
    return f"'$.\"{field}\"'"


def text_expr(field: str) -> str:
    return f"json_extract(s, {json_path(field)})"


def _text_operand(field: str) -> str:
    """The SQL expression a text comparison on ``field`` reads: its column if it has one."""
    return field if field in COLUMN_FIELDS else text_expr(field)


def number_expr(field: str) -> str:
    return f"json_extract(n, {json_path(field)})"


def glob_pattern(pattern: str) -> str:
    """Our globs treat only ``*`` and ``?`` as special; SQLite GLOB also has ``[...]``."""
    return pattern.replace("[", "[[]")


def compile_where(node: ast.Node) -> tuple[str, list[Any]]:
    """SQL boolean expression and its parameters."""
    params: list[Any] = []
    return _compile(node, params), params


def _compile(node: ast.Node, params: list[Any]) -> str:
    if isinstance(node, ast.All):
        return "1"
    if isinstance(node, ast.Compare):
        name = node.field.name
        if node.op == "~":
            params.append(glob_pattern(node.value.text))
            return f"{_text_operand(name)} GLOB ?"
        if node.value.number is not None:
            params.append(node.value.number)
            return f"{number_expr(name)} {node.op} ?"
        params.append(node.value.text)
        return f"{_text_operand(name)} {node.op} ?"
    if isinstance(node, ast.In):
        name = node.field.name
        parts = []
        numbers = [v.number for v in node.values if v.number is not None]
        texts = [v.text for v in node.values if v.number is None]
        if numbers:
            params.extend(numbers)
            parts.append(f"{number_expr(name)} IN ({', '.join('?' * len(numbers))})")
        if texts:
            params.extend(texts)
            parts.append(f"{_text_operand(name)} IN ({', '.join('?' * len(texts))})")
        return "(" + " OR ".join(parts) + ")"
    if isinstance(node, ast.Exists):
        return f"{text_expr(node.field.name)} IS NOT NULL"
    if isinstance(node, ast.And):
        return "(" + " AND ".join(_compile(item, params) for item in node.items) + ")"
    if isinstance(node, ast.Or):
        return "(" + " OR ".join(_compile(item, params) for item in node.items) + ")"
    if isinstance(node, ast.Not):
        return f"NOT COALESCE(({_compile(node.item, params)}), 0)"
    raise TypeError(f"not a query node: {node!r}")
