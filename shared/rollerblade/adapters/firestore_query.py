"""Compile an aBIDS query AST into native Firestore filters plus a Python remainder.

Records store their flat query view as two maps: ``s`` (text forms) and ``n`` (number
forms), exactly like the SQLite adapter. What runs natively in Firestore:
comparisons (``= != < <= > >=``) and ``IN`` lists of up to 30 values, combined with AND,
and OR when every branch is native. What is finished in Python with the reference
evaluator: ``exists(...)``, ``NOT``, globs (``~``), and an OR with a non-native branch.
An AND keeps its native branches in Firestore and checks the rest in Python, so
``suffix=T1w AND NOT exists(meta.SliceTiming)`` fetches only T1w records.
"""

from __future__ import annotations

from typing import Any

from google.cloud.firestore_v1 import Client
from google.cloud.firestore_v1.base_query import And, BaseFilter, FieldFilter, Or

from rollerblade.query import ast

MAX_IN = 30  # Firestore's limit on IN values and OR disjunctions


def text_path(field: str) -> str:
    return str(Client.field_path("s", field))


def number_path(field: str) -> str:
    return str(Client.field_path("n", field))


def compile_filters(node: ast.Node) -> tuple[BaseFilter | None, ast.Node | None]:
    """(native filter or None for "all documents", residual node or None for "nothing left")."""
    if isinstance(node, ast.All):
        return None, None
    if isinstance(node, ast.Compare) and node.op != "~":
        if node.value.number is not None:
            return FieldFilter(
                number_path(node.field.name), node.op if node.op != "=" else "==", node.value.number
            ), None
        return FieldFilter(text_path(node.field.name), node.op if node.op != "=" else "==", node.value.text), None
    if isinstance(node, ast.In) and len(node.values) <= MAX_IN:
        numbers = [v.number for v in node.values if v.number is not None]
        texts = [v.text for v in node.values if v.number is None]
        parts: list[BaseFilter] = []
        if numbers:
            parts.append(FieldFilter(number_path(node.field.name), "in", numbers))
        if texts:
            parts.append(FieldFilter(text_path(node.field.name), "in", texts))
        return (parts[0] if len(parts) == 1 else Or(parts)), None
    if isinstance(node, ast.And):
        native: list[BaseFilter] = []
        rest: list[ast.Node] = []
        for item in node.items:
            f, r = compile_filters(item)
            if f is not None:
                native.append(f)
            if r is not None:
                rest.append(r)
        filt = None if not native else native[0] if len(native) == 1 else And(native)
        residual = None if not rest else rest[0] if len(rest) == 1 else ast.And(tuple(rest))
        return filt, residual
    if isinstance(node, ast.Or) and len(node.items) <= MAX_IN:
        compiled = [compile_filters(item) for item in node.items]
        if all(f is not None and r is None for f, r in compiled):
            return Or([f for f, _ in compiled if f is not None]), None
    return None, node  # NOT, exists, globs, large OR: evaluated in Python


def describe(filt: Any) -> str:
    """A readable form of a compiled filter (for docs and debugging)."""
    if filt is None:
        return "(all documents)"
    if isinstance(filt, FieldFilter):
        return f"{filt.field_path} {filt.op_string} {filt.value!r}"
    joiner = " AND " if isinstance(filt, And) else " OR "
    return "(" + joiner.join(describe(f) for f in filt.filters) + ")"
