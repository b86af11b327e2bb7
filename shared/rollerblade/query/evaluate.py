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
