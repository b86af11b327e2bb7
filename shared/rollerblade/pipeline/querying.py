"""Run an aBIDS query against the index on behalf of an actor.

Parsing and the field check happen here once, for every entry point; the index adapter
compiles the AST natively. These are the unchecked operations: entry points go through
``usecases_data``, which narrows the query to what the principal may read.
"""

from __future__ import annotations

from collections.abc import Collection, Iterator

from rollerblade.errors import QueryError
from rollerblade.ports import Index
from rollerblade.query import ast
from rollerblade.query.fields import check_fields
from rollerblade.query.parser import parse_query
from rollerblade.records import Actor, ScanRecord


def compile_query(text: str, *, index: Index, datasets: Collection[str] | None = None) -> ast.Node:
    """Parse ``text`` and check its fields against the index (raises ``QueryError``): the
    fields of ``datasets`` only when given, so that errors and suggestions name no field
    of a dataset the caller may not read."""
    node = parse_query(text)
    try:
        check_fields(node, text, index.known_fields(datasets=datasets))
    except QueryError:  # the adapter's cache may predate a field another writer added
        check_fields(node, text, index.known_fields(datasets=datasets, fresh=True))
    return node


def find_records(text: str, *, index: Index, actor: Actor, limit: int | None = None) -> Iterator[ScanRecord]:
    """Records matching ``text``, ordered by (dataset, path)."""
    node = compile_query(text, index=index)
    return index.query(node=node, limit=limit)


def count_records(text: str, *, index: Index, actor: Actor) -> int:
    return index.count(node=compile_query(text, index=index))
