"""The query AST: small frozen dataclasses, produced by the parser, consumed by compilers.

Every node keeps the character position of its source token so that later checks
(unknown fields) can point at it.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from typing import Literal

CompareOp = Literal["=", "!=", "<", "<=", ">", ">=", "~"]


@dataclasses.dataclass(frozen=True)
class Field:
    """A field reference such as ``sub``, ``meta.RepetitionTime`` or ``participant.age``."""

    name: str
    position: int


@dataclasses.dataclass(frozen=True)
class Value:
    """A literal. ``number`` is set for bare numeric literals (``01``, ``2.0``), which compare
    numerically; quoted literals always compare as text."""

    text: str
    number: float | None
    position: int


@dataclasses.dataclass(frozen=True)
class Compare:
    field: Field
    op: CompareOp
    value: Value


@dataclasses.dataclass(frozen=True)
class In:
    field: Field
    values: tuple[Value, ...]


@dataclasses.dataclass(frozen=True)
class Exists:
    field: Field


@dataclasses.dataclass(frozen=True)
class And:
    items: tuple[Node, ...]


@dataclasses.dataclass(frozen=True)
class Or:
    items: tuple[Node, ...]


@dataclasses.dataclass(frozen=True)
class Not:
    item: Node


@dataclasses.dataclass(frozen=True)
class All:
    """The empty query: matches every record."""


Node = Compare | In | Exists | And | Or | Not | All


def text_equals(field: str, text: str) -> Compare:
    """``field = "text"`` built in code (as the parser builds a quoted literal)."""
    return Compare(Field(field, 0), "=", Value(text, None, 0))


def glob(field: str, pattern: str) -> Compare:
    """``field ~ "pattern"`` built in code (only ``*`` and ``?`` are special)."""
    return Compare(Field(field, 0), "~", Value(pattern, None, 0))


def one_of(field: str, texts: Iterable[str]) -> In:
    """``field IN ("a", "b", ...)`` built in code (the access scope of a query)."""
    return In(Field(field, 0), tuple(Value(t, None, 0) for t in texts))


def has_tag(tag: str, position: int = 0) -> Exists:
    """``tag=final``: a record carries a tag when its flat view has ``tags.<tag>``."""
    return Exists(Field(f"tags.{tag}", position))


def fields_of(node: Node) -> list[Field]:
    """Every field the query mentions, in source order."""
    if isinstance(node, (Compare, In, Exists)):
        return [node.field]
    if isinstance(node, (And, Or)):
        return [f for item in node.items for f in fields_of(item)]
    if isinstance(node, Not):
        return fields_of(node.item)
    return []
