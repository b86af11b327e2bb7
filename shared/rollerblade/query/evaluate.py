"""The reference semantics of a query, in pure Python.

A comparison on a missing field is false (so ``NOT`` of it is true). A bare numeric
literal compares against the field's number form and fails when the field is not a
number; any other literal compares against the text form. ``~`` is a glob: ``*`` any
run of characters, ``?`` one character, everything else literal. Backends compile the
same semantics natively and call :func:`matches` for whatever they cannot express.
"""

from __future__ import annotations

import functools
import operator
import re
from collections.abc import Callable, Mapping
from typing import Any

from rollerblade.query import ast
from rollerblade.query.fields import number_form, text_form

_OPS: dict[str, Callable[[Any, Any], bool]] = {
    "=": operator.eq,
    "!=": operator.ne,
    "<": operator.lt,
    "<=": operator.le,
    ">": operator.gt,
    ">=": operator.ge,
}


@functools.lru_cache(maxsize=1024)
def glob_regex(pattern: str) -> re.Pattern[str]:
    """Translate a glob (``*``, ``?``) into an anchored regex; nothing else is special."""
    parts = [".*" if c == "*" else "." if c == "?" else re.escape(c) for c in pattern]
    return re.compile("".join(parts), re.DOTALL)


def _compare(stored: Any, op: str, value: ast.Value) -> bool:
    if op == "~":
        return glob_regex(value.text).fullmatch(text_form(stored)) is not None
    if value.number is not None:
        number = number_form(stored)
        return number is not None and _OPS[op](number, value.number)
    return _OPS[op](text_form(stored), value.text)


def matches(node: ast.Node, flat: Mapping[str, Any]) -> bool:
    """Whether a record's flat view (:func:`rollerblade.query.fields.flatten`) matches."""
    if isinstance(node, ast.All):
        return True
    if isinstance(node, ast.Compare):
        stored = flat.get(node.field.name)
        return stored is not None and _compare(stored, node.op, node.value)
    if isinstance(node, ast.In):
        stored = flat.get(node.field.name)
        return stored is not None and any(_compare(stored, "=", v) for v in node.values)
    if isinstance(node, ast.Exists):
        return flat.get(node.field.name) is not None
    if isinstance(node, ast.And):
        return all(matches(item, flat) for item in node.items)
    if isinstance(node, ast.Or):
        return any(matches(item, flat) for item in node.items)
    if isinstance(node, ast.Not):
        return not matches(node.item, flat)
    raise TypeError(f"not a query node: {node!r}")


Matcher = Callable[[Mapping[str, Any]], bool]


@functools.lru_cache(maxsize=4096)
def matcher(node: ast.Node) -> Matcher:
    """:func:`matches` compiled once into closures: the same answers, several times faster
    when one query meets many records (the rule engine evaluates every rule on every event)."""
    if isinstance(node, ast.All):
        return lambda flat: True
    if isinstance(node, ast.Compare):
        return _compare_matcher(node.field.name, node.op, node.value)
    if isinstance(node, ast.In):
        if all(v.number is None for v in node.values):  # texts only: one set probe
            name, texts = node.field.name, frozenset(v.text for v in node.values)
            return lambda flat: (v := flat.get(name)) is not None and (v if type(v) is str else text_form(v)) in texts
        options = tuple(_compare_matcher(node.field.name, "=", v) for v in node.values)
        return lambda flat: any(m(flat) for m in options)
    if isinstance(node, ast.Exists):
        name = node.field.name
        return lambda flat: flat.get(name) is not None
    if isinstance(node, ast.And):
        items = tuple(matcher(item) for item in node.items)
        return lambda flat: all(m(flat) for m in items)
    if isinstance(node, ast.Or):
        items = tuple(matcher(item) for item in node.items)
        return lambda flat: any(m(flat) for m in items)
    if isinstance(node, ast.Not):
        inner = matcher(node.item)
        return lambda flat: not inner(flat)
    raise TypeError(f"not a query node: {node!r}")


def _compare_matcher(name: str, op: str, value: ast.Value) -> Matcher:
    if op == "~":
        regex = glob_regex(value.text)
        return lambda flat: (v := flat.get(name)) is not None and regex.fullmatch(text_form(v)) is not None
    compare = _OPS[op]
    if value.number is not None:
        number = value.number

        def numeric(flat: Mapping[str, Any]) -> bool:
            v = flat.get(name)
            n = number_form(v) if v is not None else None
            return n is not None and compare(n, number)

        return numeric
    text = value.text
    return lambda flat: (v := flat.get(name)) is not None and compare(v if type(v) is str else text_form(v), text)
