"""What a record looks like to a query: one flat map of field name -> value.

Every backend indexes and compares exactly this view, which is why SQLite and Firestore
answer alike. Each value has a *text form* (what ``=`` with a quoted or non-numeric
literal, ``<`` on text and ``~`` glob compare against) and, when it is a number or a
numeric string such as ``"01"``, a *number form* (what bare numeric literals compare
against): ``run=1`` matches ``run-01``.
"""

from __future__ import annotations

import difflib
import json
import math
import re
from collections.abc import Iterable
from typing import Any

from rollerblade.abids.schema import vocabulary
from rollerblade.errors import QueryError
from rollerblade.query import ast
from rollerblade.records import ScanRecord

#: Namespaces whose sub-fields come from the data (sidecars, TSV columns).
DYNAMIC_NAMESPACES = ("meta", "participant", "session", "tags")
#: The sidecar key of a derivative's tags (``tag=final`` queries them as ``tags.final``).
TAGS_KEY = "RollerbladeTags"
#: Fields of the ``image.`` namespace (NIfTI header facts).
IMAGE_FIELDS = (
    "nifti_version",
    "ndim",
    "shape",
    "voxel_size",
    "dtype",
    "space_unit",
    "time_unit",
    "nx",
    "ny",
    "nz",
    "nt",
    "vx",
    "vy",
    "vz",
    "tr",
    "orientation",
)
#: Fields of the ``file.`` namespace (storage facts).
FILE_FIELDS = ("key", "size", "md5", "generation")
#: Plain fields besides the filename entity keys.
RECORD_FIELDS = ("dataset", "path", "datatype", "suffix", "extension", "analysis", "error", "warning")

_NUMERIC = re.compile(r"[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?")


def static_fields() -> tuple[str, ...]:
    """Every field name that exists whatever the data: entities, record, image and file fields."""
    return (
        RECORD_FIELDS
        + vocabulary().entity_order
        + tuple(f"image.{f}" for f in IMAGE_FIELDS)
        + tuple(f"file.{f}" for f in FILE_FIELDS)
    )


def flatten(record: ScanRecord) -> dict[str, Any]:
    """The flat query view of a record. Missing and null values are left out."""
    flat: dict[str, Any] = {"dataset": record.dataset, "path": record.path}
    if record.path.startswith("derivatives/"):
        flat["analysis"] = record.path.split("/", 2)[1]
    if record.error is not None:
        flat["error"] = record.error
    if record.warning is not None:
        flat["warning"] = record.warning
    flat.update(record.entities)
    tags = record.meta.get(TAGS_KEY) if "analysis" in flat else None
    if isinstance(tags, list):
        for tag in tags:
            if isinstance(tag, str):
                flat[f"tags.{tag}"] = True
    for namespace, values in (
        ("meta", record.meta),
        ("participant", record.participant),
        ("session", record.session),
        ("image", record.image),
        ("file", record.file),
    ):
        for key, value in values.items():
            if value is not None:
                flat[f"{namespace}.{key}"] = value
    return flat


def text_form(value: Any) -> str:
    """The text a value compares as: strings as they are, everything else as JSON."""
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float) and math.isfinite(value):
        return repr(value)  # what json.dumps writes
    return json.dumps(value, sort_keys=True, separators=(",", ":"))


def number_form(value: Any) -> float | None:
    """The number a value compares as, or ``None`` when it is not a number."""
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        return float(value)
    if isinstance(value, str) and _NUMERIC.fullmatch(value):
        return float(value)
    return None


#: (type, value) -> its text and number forms, for the scalars records repeat (entity
#: values, image facts, table cells): an index writer would otherwise work them out ~25
#: times per record. Bounded: cleared when full.
_FORMS: dict[tuple[type, Any], tuple[str, float | None]] = {}
_FORMS_MAX = 100_000


def forms(value: Any) -> tuple[str, float | None]:
    """``(text_form(value), number_form(value))``, remembered for scalars."""
    if not isinstance(value, (str, int, float)):
        return text_form(value), number_form(value)
    key = (type(value), value)  # the type: 1, 1.0 and True are equal keys but differ in form
    found = _FORMS.get(key)
    if found is None:
        if len(_FORMS) >= _FORMS_MAX:
            _FORMS.clear()
        found = _FORMS[key] = (text_form(value), number_form(value))
    return found


def _suggestions(name: str, known: Iterable[str]) -> tuple[str, ...]:
    return tuple(difflib.get_close_matches(name, sorted(set(known)), n=3, cutoff=0.6))


def check_fields(node: ast.Node, text: str, dynamic_fields: Iterable[str] | None = None) -> None:
    """Raise :class:`QueryError` for a field that cannot exist.

    Static fields are always checked. ``meta.*``, ``participant.*`` and ``session.*`` are
    checked against ``dynamic_fields`` (the fields present in the index) when given,
    except inside ``exists(...)``, where absence is the point.
    """
    vocab = vocabulary()
    static = set(static_fields())
    dynamic = set(dynamic_fields) if dynamic_fields is not None else None
    exists_only = _exists_fields(node)
    for field in ast.fields_of(node):
        name = field.name
        namespace, dot, rest = name.partition(".")
        if name in static:
            continue
        if namespace in DYNAMIC_NAMESPACES and dot and rest:
            if dynamic is None or name in dynamic or field in exists_only:
                continue
            siblings = sorted(f for f in dynamic if f.startswith(namespace + "."))
            listed = ", ".join(siblings[:12]) + (f", ... ({len(siblings)} in all)" if len(siblings) > 12 else "")
            raise QueryError(
                f"no record has field {name!r}; {namespace} fields in the index: {listed or 'none'}",
                query=text,
                position=field.position,
                token=name,
                suggestions=_suggestions(name, dynamic),
            )
        known = static | (dynamic or set())
        hint = _suggestions(name, known)
        if name in vocab.entity_keys:
            hint = (vocab.entity_keys[name],)
        raise QueryError(
            f"unknown field {name!r}; fields are entity keys ({', '.join(vocab.entity_order[:8])}, ...), "
            f"{', '.join(RECORD_FIELDS)}, meta.<Key>, participant.<column>, session.<column>, "
            "image.<fact>, file.<fact>",
            query=text,
            position=field.position,
            token=name,
            suggestions=hint,
        )


def _exists_fields(node: ast.Node) -> set[ast.Field]:
    if isinstance(node, ast.Exists):
        return {node.field}
    if isinstance(node, (ast.And, ast.Or)):
        return set().union(*(_exists_fields(item) for item in node.items))
    if isinstance(node, ast.Not):
        return _exists_fields(node.item)
    return set()
