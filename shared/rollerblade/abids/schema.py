"""The BIDS vocabulary, read once from the official schema that ``bidsschematools`` bundles.

Nothing BIDS-specific is hand-written in Rollerblade: entity keys and their order, value
formats, suffixes, datatypes, extensions and the per-datatype filename rules all come
from :func:`vocabulary`.
"""

from __future__ import annotations

import dataclasses
import functools
import re
from collections.abc import Mapping
from typing import Any

from bidsschematools import schema as bids_schema


@dataclasses.dataclass(frozen=True)
class FileRule:
    """What one (datatype, suffix) pair allows, merged over every schema rule that names it."""

    extensions: frozenset[str]
    entities: frozenset[str]  # filename keys allowed
    required: frozenset[str]  # filename keys every rule requires


@dataclasses.dataclass(frozen=True)
class Vocabulary:
    """The parts of the BIDS schema that path parsing needs, in lookup-friendly shapes."""

    bids_version: str
    schema_version: str
    entity_order: tuple[str, ...]  # filename keys in schema order: sub, tpl, ses, ...
    entity_names: Mapping[str, str]  # filename key -> schema name (sub -> subject)
    entity_keys: Mapping[str, str]  # schema name -> filename key (subject -> sub)
    entity_patterns: Mapping[str, re.Pattern[str]]  # filename key -> value pattern
    suffixes: frozenset[str]
    datatypes: frozenset[str]
    extensions: tuple[str, ...]  # longest first, ".nii.gz" before ".gz"
    directory_extensions: frozenset[str]  # ".ds", ".ome.zarr" ... (stored without "/")
    opaque_directories: frozenset[str]  # code, sourcedata, derivatives, ...
    top_level_files: frozenset[str]  # dataset_description.json, README, README.md, ...
    raw_rules: Mapping[tuple[str, str], FileRule]  # (datatype, suffix) -> rule
    deriv_rules: Mapping[tuple[str, str], FileRule]

    def key_order(self, key: str) -> int:
        return self._order[key]

    @functools.cached_property
    def _order(self) -> dict[str, int]:
        return {key: i for i, key in enumerate(self.entity_order)}


def _merge_rules(groups: Mapping[str, Any], keys: Mapping[str, str]) -> dict[tuple[str, str], FileRule]:
    merged: dict[tuple[str, str], tuple[set[str], set[str], set[str] | None]] = {}
    for group in groups.values():
        for rule in group.values():
            if "suffixes" not in rule or "datatypes" not in rule:
                continue
            entities = dict(rule.get("entities") or {})
            allowed = {keys[name] for name in entities}
            required = {keys[name] for name, level in entities.items() if level == "required"}
            for datatype in rule["datatypes"]:
                for suffix in rule["suffixes"]:
                    ext, ent, req = merged.setdefault((datatype, suffix), (set(), set(), None))
                    ext.update(rule["extensions"])
                    ent.update(allowed)
                    merged[(datatype, suffix)] = (ext, ent, required if req is None else req & required)
    return {
        pair: FileRule(frozenset(ext), frozenset(ent), frozenset(req or ())) for pair, (ext, ent, req) in merged.items()
    }


@functools.cache
def vocabulary() -> Vocabulary:
    """Load the bundled schema (BIDS 1.11) once and derive the lookup tables."""
    s = bids_schema.load_schema()
    objects, rules = s["objects"], s["rules"]
    names = list(rules["entities"])
    keys = {name: objects["entities"][name]["name"] for name in names}
    patterns: dict[str, re.Pattern[str]] = {}
    for name in names:
        entity = objects["entities"][name]
        if "enum" in entity:
            patterns[keys[name]] = re.compile("|".join(re.escape(str(v)) for v in entity["enum"]))
        else:
            patterns[keys[name]] = re.compile(objects["formats"][entity["format"]]["pattern"])
    extensions = sorted(
        (e["value"] for e in objects["extensions"].values() if e["value"] not in ("", "/", ".*")),
        key=len,
        reverse=True,
    )
    raw_dirs = rules["directories"]["raw"]
    opaque = {d["name"] for d in raw_dirs.values() if d.get("opaque") and "name" in d}
    top_level: set[str] = set()
    for rule in rules["files"]["common"]["core"].values():
        if "path" in rule:
            top_level.add(rule["path"])
        elif "stem" in rule:
            top_level.update(rule["stem"] + ext for ext in rule["extensions"])
    return Vocabulary(
        bids_version=str(s["bids_version"]),
        schema_version=str(s["schema_version"]),
        entity_order=tuple(keys[n] for n in names),
        entity_names={keys[n]: n for n in names},
        entity_keys=keys,
        entity_patterns=patterns,
        suffixes=frozenset(v["value"] for v in objects["suffixes"].values()),
        datatypes=frozenset(v["value"] for v in objects["datatypes"].values()),
        extensions=tuple(extensions),
        directory_extensions=frozenset(e[:-1] for e in extensions if e.endswith("/")),
        opaque_directories=frozenset(opaque),
        top_level_files=frozenset(top_level),
        raw_rules=_merge_rules(rules["files"]["raw"], keys),
        deriv_rules=_merge_rules(rules["files"]["deriv"], keys),
    )
