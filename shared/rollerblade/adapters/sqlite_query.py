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
walk the primary key in result order instead of sorting. ``extension`` is a column too,
read without parsing the row's JSON.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
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

#: Fields stored as columns of ``records`` with the same text as in ``s``. ``extension``
#: is one because nearly every selection names it beside an indexed entity (``task=rest
#: AND extension=.nii.gz``): read from ``s`` it cost a JSON parse per row (31 against 10
#: ms over 16,664 rows).
COLUMN_FIELDS = ("dataset", "path", "extension")

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


def select(
    node: ast.Node,
    what: str,
    *,
    join: tuple[str, ...] = (),
    tables: Mapping[frozenset[str], str] | None = None,
    layered: bool = False,
) -> tuple[str, list[Any]]:
    """``SELECT what FROM records r`` (with the layers ``node`` reads, and those aliased in
    ``join``) ``WHERE node``; ``tables`` and ``layered``: see :func:`compile_where`."""
    where, params, joins = compile_where(node, tables=tables, layered=layered)
    source = " ".join(["records r", *(LAYER_JOINS[alias] for alias in sorted(joins | set(join)))])
    return f"SELECT {what} FROM {source} WHERE {where}", params


def glob_pattern(pattern: str) -> str:
    """Our globs treat only ``*`` and ``?`` as special; SQLite GLOB also has ``[...]``."""
    return pattern.replace("[", "[[]")


def compile_where(
    node: ast.Node, *, tables: Mapping[frozenset[str], str] | None = None, layered: bool = False
) -> tuple[str, list[Any], set[str]]:
    """SQL boolean expression over ``records r``, its parameters, and the aliases of the
    layers it reads (see :data:`LAYER_JOINS`). ``tables``: temporary tables of one text
    column, by the set of texts they hold; ``dataset IN (...)`` of such a set reads the
    table instead of listing its texts (see :func:`dataset_sets`).

    ``layered``: a test of an inherited field is compiled as the record's reference being
    among the layers whose value passes it (see :meth:`_Compiler.layered`), worked out once
    from ``layer_fields``, instead of each record's layer being joined and its JSON read.
    That is what pays when the query reads every record anyway (see :func:`selective`)."""
    compiler = _Compiler(tables or {}, _scope(node) if layered else None)
    return compiler.compile(node), compiler.params, compiler.joins


def selective(node: ast.Node) -> bool:
    """Whether ``node`` requires an indexed field or the path to equal a value (or one of
    a list): SQLite then reads only the records an index finds, and a query reading each
    one's layers costs less than working out which layers pass first."""
    if isinstance(node, ast.And):
        return any(selective(item) for item in node.items)
    if isinstance(node, (ast.Compare, ast.In)) and (isinstance(node, ast.In) or node.op == "="):
        name = node.field.name
        values = node.values if isinstance(node, ast.In) else (node.value,)
        if name == "path" or (name in INDEXED_NUMBER_FIELDS and all(v.number is not None for v in values)):
            return True
        return name in INDEXED_TEXT_FIELDS and all(v.number is None for v in values)
    return False


def _scope(node: ast.Node) -> list[ast.Compare | ast.In]:
    """The terms of ``node`` that every record it selects satisfies and that name its
    datasets (``dataset=D``, ``dataset IN (...)`` of texts): the layers such a record
    reads are of those datasets."""
    if isinstance(node, ast.And):
        return [term for item in node.items for term in _scope(item)]
    if isinstance(node, ast.Compare) and node.field.name == "dataset" and node.op == "=" and node.value.number is None:
        return [node]
    if isinstance(node, ast.In) and _text_set(node) is not None:
        return [node]
    return []


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


def _layer_operand(field: str, form: str) -> str:
    """A layer's value of the field, in a subquery over the field's rows ``layer_fields f``:
    a text longer than ``layer_fields`` keeps is read from the layer."""
    if form == "n":
        return "f.n"
    return f"COALESCE(f.s, (SELECT json_extract(l.s, {json_path(field)}) FROM layers l WHERE l.id = f.layer))"


class _Compiler:
    """Compiles one query; parameters are appended in the order their ``?`` appear."""

    def __init__(self, tables: Mapping[frozenset[str], str], scope: list[ast.Compare | ast.In] | None) -> None:
        self.params: list[Any] = []
        self.joins: set[str] = set()
        self.tables = tables
        self.scope = scope  # None: inherited fields are read through joined layers

    def compile(self, node: ast.Node) -> str:
        if isinstance(node, ast.All):
            return "1"
        if isinstance(node, (ast.Compare, ast.In, ast.Exists)):
            namespace = node.field.name.split(".", 1)[0] if "." in node.field.name else ""
            if self.scope is not None and namespace in _INHERITED:
                return self.layered(node, namespace)
            return self.test(node, self.record_operand)
        if isinstance(node, ast.And):
            return "(" + " AND ".join(self.compile(item) for item in node.items) + ")"
        if isinstance(node, ast.Or):
            return "(" + " OR ".join(self.compile(item) for item in node.items) + ")"
        if isinstance(node, ast.Not):
            return f"NOT COALESCE(({self.compile(node.item)}), 0)"
        raise TypeError(f"not a query node: {node!r}")

    def record_operand(self, field: str, form: str) -> str:
        """What a record reads of ``field``: its column if it has one (text form), else
        its own or its layers' view."""
        if form == "s" and field in COLUMN_FIELDS:
            return f"r.{field}"
        return field_expr(field, form, self.joins)

    def test(self, node: ast.Compare | ast.In | ast.Exists, operand: Callable[[str, str], str]) -> str:
        """``node``'s test of the value ``operand(field, form)`` reads."""
        name, params = node.field.name, self.params
        if isinstance(node, ast.Exists):
            return f"{operand(name, 's')} IS NOT NULL"
        if isinstance(node, ast.Compare):
            if node.op == "~":
                params.append(glob_pattern(node.value.text))
                return f"{operand(name, 's')} GLOB ?"
            if node.value.number is not None:
                params.append(node.value.number)
                return f"{operand(name, 'n')} {node.op} ?"
            params.append(node.value.text)
            return f"{operand(name, 's')} {node.op} ?"
        names = _text_set(node) if self.tables else None  # dataset IN (...): a record's column
        if names is not None and (table := self.tables.get(names)) is not None:
            return f"{operand(name, 's')} IN temp.{table}"
        parts = []
        numbers = [v.number for v in node.values if v.number is not None]
        texts = [v.text for v in node.values if v.number is None]
        if numbers:
            params.extend(numbers)
            parts.append(f"{operand(name, 'n')} IN ({', '.join('?' * len(numbers))})")
        if texts:
            params.extend(texts)
            parts.append(f"{operand(name, 's')} IN ({', '.join('?' * len(texts))})")
        return "(" + " OR ".join(parts) + ")"

    def layered(self, node: ast.Compare | ast.In | ast.Exists, namespace: str) -> str:
        """``node``'s test of an inherited field as the record's reference being among the
        layers that hold the field with a value that passes it. A test never passes a
        missing value (``NOT`` is compiled around it), so only layers holding the field
        are read: ``layer_fields`` holds each layer's fields with their text and number
        forms, by field and dataset, so no layer's JSON is read either.

        ``meta.*`` and ``tags.*`` are read from the record's own sidecar where it holds
        the deciding key (a null included), else from its chain, as :func:`field_expr`
        does; the reference that decides is picked first, then tested once."""
        field = node.field.name
        if namespace in _LAYER_OF:
            # unary +: the set is probed per record, never walked as index keys (for each
            # of 900 datasets of a scope, each of 4,000 participants: 0.5 s)
            ref = f"+r.{_LAYER_OF[namespace]}"
        else:
            decides = field if namespace == "meta" else f"meta.{TAGS_KEY}"
            self.params.append(decides)
            holding = f"SELECT f.layer FROM layer_fields f WHERE f.field = ?{self.narrowed()}"
            ref = f"(CASE WHEN r.o IN ({holding}) THEN r.o ELSE r.m END)"
        self.params.append(field)
        narrowed = self.narrowed()
        passing = self.test(node, _layer_operand)
        return f"{ref} IN (SELECT f.layer FROM layer_fields f WHERE f.field = ?{narrowed} AND {passing})"

    def narrowed(self) -> str:
        """`` AND ...`` narrowing ``layer_fields f`` to the query's datasets, if it names them."""
        parts = []
        for term in self.scope or ():
            if isinstance(term, ast.Compare):
                self.params.append(term.value.text)
                parts.append("f.dataset = ?")
            elif (names := _text_set(term)) is not None and (table := self.tables.get(names)) is not None:
                parts.append(f"f.dataset IN temp.{table}")
            else:
                self.params.extend(v.text for v in term.values)
                parts.append(f"f.dataset IN ({', '.join('?' * len(term.values))})")
        return "".join(f" AND {part}" for part in parts)


#: Namespaces of the fields a record inherits from layers.
_INHERITED = ("meta", "tags", *_LAYER_OF)
