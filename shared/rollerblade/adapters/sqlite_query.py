"""Compile an aBIDS query AST into a SQLite SELECT over the ``records`` table and its layers.

Each row stores its flat query view twice: ``s`` maps every field to its text form, ``n``
maps numeric fields to their number form (see :mod:`rollerblade.query.fields`). A record
row (alias ``r``) holds the fields that are its own; what it inherits is read from the
layers it references (see :mod:`rollerblade.adapters.sqlite_layers`): ``meta.*`` and
``tags.*`` from its own sidecar (``o``) or else its inheritance chain (``m``),
``participant.*`` from ``p`` and ``session.*`` from ``q``. Only the layers a query names
are joined. Every operator of the language has an exact SQLite equivalent, so nothing is
left for Python; the commonest fields have expression indexes. ``dataset`` and ``path``
are also the table's own columns (its primary key), and text comparisons on them are
compiled on the columns: the access scope ``dataset IN (...)`` and the page cursor then
walk the primary key in result order instead of sorting.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from rollerblade.adapters.sqlite_layers import REF_COLUMNS
from rollerblade.query import ast
from rollerblade.query.fields import TAGS_KEY

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
    """A record row's own text form of ``field`` (what the expression indexes hold)."""
    return f"json_extract(s, {json_path(field)})"


def number_expr(field: str) -> str:
    return f"json_extract(n, {json_path(field)})"


#: The layer each namespace of inherited fields is read from (the record column holding
#: its id is named like the alias).
_LAYER_OF = {"participant": "p", "session": "q"}
#: Joins of the layers, by alias.
LAYER_JOINS = {alias: f"LEFT JOIN layers {alias} ON {alias}.id = r.{alias}" for alias in REF_COLUMNS}


def field_expr(field: str, form: str, joins: set[str]) -> str:
    """The SQL expression of ``field``'s text (``form`` ``s``) or number (``n``) form over
    ``records r`` and its layers; the layers it reads are added to ``joins``."""
    path = json_path(field)
    namespace = field.split(".", 1)[0] if "." in field else ""
    if namespace in ("meta", "tags"):
        # the own sidecar wins for every key it has (a null included: it hides the
        # chain's value); tags come whole from whichever layer has the tags key
        decides = path if namespace == "meta" else json_path(f"meta.{TAGS_KEY}")
        joins.update(("m", "o"))
        return (
            f"(CASE WHEN json_type(o.s, {decides}) IS NULL "
            f"THEN json_extract(m.{form}, {path}) ELSE json_extract(o.{form}, {path}) END)"
        )
    if namespace in _LAYER_OF:
        alias = _LAYER_OF[namespace]
        joins.add(alias)
        return f"json_extract({alias}.{form}, {path})"
    return f"json_extract(r.{form}, {path})"


def _text_operand(field: str, joins: set[str]) -> str:
    """The SQL expression a text comparison on ``field`` reads: its column if it has one."""
    return f"r.{field}" if field in COLUMN_FIELDS else field_expr(field, "s", joins)


def _number_operand(field: str, joins: set[str]) -> str:
    return field_expr(field, "n", joins)


def select(
    node: ast.Node, what: str, *, join: tuple[str, ...] = (), tables: Mapping[frozenset[str], str] | None = None
) -> tuple[str, list[Any]]:
    """``SELECT what FROM records r`` (with the layers ``node`` reads, and those aliased in
    ``join``) ``WHERE node``; ``tables``: see :func:`compile_where`."""
    where, params, joins = compile_where(node, tables=tables)
    source = " ".join(["records r", *(LAYER_JOINS[alias] for alias in sorted(joins | set(join)))])
    return f"SELECT {what} FROM {source} WHERE {where}", params


def glob_pattern(pattern: str) -> str:
    """Our globs treat only ``*`` and ``?`` as special; SQLite GLOB also has ``[...]``."""
    return pattern.replace("[", "[[]")


def compile_where(
    node: ast.Node, *, tables: Mapping[frozenset[str], str] | None = None
) -> tuple[str, list[Any], set[str]]:
    """SQL boolean expression over ``records r``, its parameters, and the aliases of the
    layers it reads (see :data:`LAYER_JOINS`). ``tables``: temporary tables of one text
    column, by the set of texts they hold; ``dataset IN (...)`` of such a set reads the
    table instead of listing its texts (see :func:`dataset_sets`)."""
    params: list[Any] = []
    joins: set[str] = set()
    return _compile(node, params, joins, tables or {}), params, joins


def dataset_sets(node: ast.Node, least: int) -> set[frozenset[str]]:
    """The sets of texts of the ``dataset IN (...)`` terms of ``node`` with at least
    ``least`` of them: an access scope. SQLite builds the list of an ``IN (?, ...)`` anew
    each time a statement runs (~1 us a value); a table holding it is read as it stands."""
    found = set()
    if isinstance(node, ast.In) and len(node.values) >= least and (names := _text_set(node)) is not None:
        found.add(names)
    children = node.items if isinstance(node, (ast.And, ast.Or)) else (node.item,) if isinstance(node, ast.Not) else ()
    for child in children:
        found |= dataset_sets(child, least)
    return found


#: id of a ``dataset IN (...)`` node -> (the node, its set of texts or None): an access
#: scope is one node reused by every query of its user (see guard.narrow), so its set is
#: worked out once, not twice per query.
_SETS: dict[int, tuple[ast.In, frozenset[str] | None]] = {}


def _text_set(node: ast.In) -> frozenset[str] | None:
    """The texts of ``dataset IN (...)``; None for another field or any number among them."""
    if node.field.name != "dataset":
        return None
    known = _SETS.get(id(node))
    if known is None or known[0] is not node:
        if len(_SETS) >= 256:
            _SETS.clear()
        texts = frozenset(v.text for v in node.values) if all(v.number is None for v in node.values) else None
        known = _SETS[id(node)] = (node, texts)  # the node is held: its id is not reused meanwhile
    return known[1]


def _compile(node: ast.Node, params: list[Any], joins: set[str], tables: Mapping[frozenset[str], str]) -> str:
    if isinstance(node, ast.All):
        return "1"
    if isinstance(node, ast.Compare):
        name = node.field.name
        if node.op == "~":
            params.append(glob_pattern(node.value.text))
            return f"{_text_operand(name, joins)} GLOB ?"
        if node.value.number is not None:
            params.append(node.value.number)
            return f"{_number_operand(name, joins)} {node.op} ?"
        params.append(node.value.text)
        return f"{_text_operand(name, joins)} {node.op} ?"
    if isinstance(node, ast.In):
        name = node.field.name
        names = _text_set(node) if tables else None
        if names is not None and (table := tables.get(names)) is not None:
            return f"{_text_operand(name, joins)} IN temp.{table}"
        parts = []
        numbers = [v.number for v in node.values if v.number is not None]
        texts = [v.text for v in node.values if v.number is None]
        if numbers:
            params.extend(numbers)
            parts.append(f"{_number_operand(name, joins)} IN ({', '.join('?' * len(numbers))})")
        if texts:
            params.extend(texts)
            parts.append(f"{_text_operand(name, joins)} IN ({', '.join('?' * len(texts))})")
        return "(" + " OR ".join(parts) + ")"
    if isinstance(node, ast.Exists):
        return f"{field_expr(node.field.name, 's', joins)} IS NOT NULL"
    if isinstance(node, ast.And):
        return "(" + " AND ".join(_compile(item, params, joins, tables) for item in node.items) + ")"
    if isinstance(node, ast.Or):
        return "(" + " OR ".join(_compile(item, params, joins, tables) for item in node.items) + ")"
    if isinstance(node, ast.Not):
        return f"NOT COALESCE(({_compile(node.item, params, joins, tables)}), 0)"
    raise TypeError(f"not a query node: {node!r}")
