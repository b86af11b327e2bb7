"""Classify and parse one path inside a BIDS dataset, using the schema's vocabulary.

``parse_path("sub-01/ses-1/anat/sub-01_ses-1_T1w.nii.gz")`` gives a :class:`BidsPath`
with its entities, datatype, suffix, extension and what kind of file it is: a data file
(indexed as a record), a metadata file that feeds other records (sidecar JSON,
participants.tsv, sessions.tsv, dataset_description.json), a top-level document, or an
object in an opaque folder (code/, sourcedata/ ...).

Parsing is lenient where real datasets need it, as pybids is: a name that reads as
``key-value_..._suffix.ext`` keeps its entities even when it breaks a schema rule (an
unknown suffix or entity, entities out of order, a suffix or entity the schema does not
allow in that folder, a folder the schema does not know such as fMRIPrep's ``figures/``).
Each broken rule becomes a *warning* on the path. A name is checked against the schema's
raw and derivative rules; one valid under either gets no warning, so derivative datasets
(``space``, ``desc``, ``res``, ``hemi``; ``dseg``, ``mask``, ``xfm`` ...) are clean.
Only names that cannot be read at all raise :class:`~rollerblade.errors.BidsNameError`.
"""

from __future__ import annotations

import dataclasses
import difflib
from typing import Literal

from rollerblade.abids.schema import FileRule, Vocabulary, vocabulary
from rollerblade.errors import BidsNameError

PathKind = Literal[
    "data",  # a file indexed as a scan record
    "sidecar",  # a JSON sidecar (inheritance principle)
    "participants",  # participants.tsv
    "participants_json",  # participants.json (column descriptions, units)
    "sessions",  # sub-<label>_sessions.tsv
    "description",  # dataset_description.json
    "document",  # README, CHANGES, LICENSE, *_sessions.json ...: kept, not indexed
    "opaque",  # anything inside code/, sourcedata/, derivatives/, stimuli/ ...
]


@dataclasses.dataclass(frozen=True)
class BidsPath:
    """One parsed dataset path. ``path`` is the unit: for a directory-format file
    (``.ds/``, ``.ome.zarr/``) it is the folder, not the member object."""

    path: str
    kind: PathKind
    directory: str
    entities: dict[str, str] = dataclasses.field(default_factory=dict)
    datatype: str | None = None
    suffix: str | None = None
    extension: str = ""
    warnings: tuple[str, ...] = ()

    def all_entities(self) -> dict[str, str]:
        """Filename entities plus ``datatype``, ``suffix`` and ``extension`` (the query view)."""
        out = dict(self.entities)
        if self.datatype:
            out["datatype"] = self.datatype
        if self.suffix:
            out["suffix"] = self.suffix
        out["extension"] = self.extension
        return out


def split_extension(filename: str, vocab: Vocabulary) -> tuple[str, str]:
    """Split ``sub-01_T1w.nii.gz`` into (``sub-01_T1w``, ``.nii.gz``) with schema extensions."""
    for ext in vocab.extensions:
        bare = ext.rstrip("/")
        if filename.endswith(bare) and len(filename) > len(bare):
            return filename[: -len(bare)], ext
    dot = filename.find(".")
    return (filename, "") if dot < 0 else (filename[:dot], filename[dot:])


def _suggest(word: str, choices: frozenset[str] | tuple[str, ...]) -> str:
    close = difflib.get_close_matches(word, sorted(choices), n=3, cutoff=0.6)
    return f" (did you mean {' or '.join(close)}?)" if close else ""


def parse_stem(path: str, stem: str, vocab: Vocabulary, warnings: list[str]) -> tuple[dict[str, str], str]:
    """Parse ``sub-01_ses-1_T1w`` into ({'sub': '01', 'ses': '1'}, 'T1w').

    Schema rules the name breaks are appended to ``warnings``; a name that does not read
    as key-value pairs and a suffix raises :class:`BidsNameError`.
    """
    parts = stem.split("_")
    suffix = parts[-1]
    if "-" in suffix or not suffix:
        raise BidsNameError(path, f"the name must end with a suffix such as _T1w or _bold, not {suffix!r}")
    if suffix not in vocab.suffixes:
        warnings.append(f"unknown suffix {suffix!r}{_suggest(suffix, vocab.suffixes)}")
    entities: dict[str, str] = {}
    last = -1
    for pair in parts[:-1]:
        key, sep, value = pair.partition("-")
        if not sep or not key or not value:
            raise BidsNameError(path, f"{pair!r} is not a key-value entity like sub-01")
        if key in entities:
            raise BidsNameError(path, f"entity {key!r} appears twice")
        if key not in vocab.entity_names:
            hint = _suggest(key, vocab.entity_order)
            if key in vocab.entity_keys:
                hint = f" (the filename key of {key!r} is {vocab.entity_keys[key]!r})"
            warnings.append(f"unknown entity {key!r}{hint}")
            entities[key] = value
            continue
        if not vocab.entity_patterns[key].fullmatch(value):
            raise BidsNameError(path, f"{key}-{value}: value must match {vocab.entity_patterns[key].pattern}")
        order = vocab.key_order(key)
        if order < last:
            previous = max((k for k in entities if k in vocab.entity_names), key=vocab.key_order)
            in_order = ", ".join(k for k in vocab.entity_order if k in entities or k == key)
            warnings.append(f"entities out of order: {key!r} must come before {previous!r} (BIDS order: {in_order})")
        last = max(last, order)
        entities[key] = value
    return entities, suffix


def _rule_problem(
    rule: FileRule | None, datatype: str, suffix: str, entities: dict[str, str], extension: str
) -> str | None:
    """What the name breaks of one schema rule, or None."""
    if rule is None:
        return f"suffix {suffix!r} is not allowed in a {datatype}/ folder"
    if extension not in rule.extensions:
        return (
            f"extension {extension or '(none)'!r} is not allowed for {datatype}/{suffix} "
            f"(allowed: {', '.join(sorted(rule.extensions))})"
        )
    extra = set(entities) - rule.entities
    if extra:
        return (
            f"entity {', '.join(sorted(extra))!r} is not allowed for {datatype}/{suffix} "
            f"(allowed: {', '.join(sorted(rule.entities))})"
        )
    missing = rule.required - set(entities)
    if missing:
        return f"{datatype}/{suffix} requires entity {', '.join(sorted(missing))}"
    return None


def _check_rules(
    vocab: Vocabulary, datatype: str, suffix: str, entities: dict[str, str], extension: str, derivative: bool
) -> str | None:
    """The raw rule's problem when the derivative rules do not allow the name either."""
    known = {k: v for k, v in entities.items() if k in vocab.entity_names}
    raw = _rule_problem(vocab.raw_rules.get((datatype, suffix)), datatype, suffix, known, extension)
    if raw is None:
        return None
    deriv = vocab.deriv_rules.get((datatype, suffix))
    if derivative:
        # Analyses may add space/desc/res/... to any raw name and store reports (.png,
        # .tsv) beside images: check entity keys and suffix only.
        base = deriv or vocab.raw_rules.get((datatype, suffix))
        extensions = frozenset(base.extensions if base else ()) | {extension}
        deriv = FileRule(extensions, frozenset(vocab.entity_order), frozenset({"sub"}))
    if deriv is not None and _rule_problem(deriv, datatype, suffix, known, extension) is None:
        return None
    return raw


def _unit(parts: list[str], vocab: Vocabulary) -> list[str]:
    """Cut a member of a directory-format file (``x_meg.ds/a/b``) back to its unit."""
    for i, part in enumerate(parts[:-1]):
        if any(part.endswith(ext) for ext in vocab.directory_extensions):
            return parts[: i + 1]
    return parts


def parse_path(path: str, *, derivative: bool = False) -> BidsPath:
    """Classify and parse a dataset-relative path (``/``-separated, already checked safe)."""
    vocab = vocabulary()
    parts = path.split("/")
    if parts[0] in vocab.opaque_directories or parts[0] in ("phenotype", ".git", ".datalad"):
        return BidsPath(path, "opaque", "/".join(parts[:-1]))
    parts = _unit(parts, vocab)
    unit = "/".join(parts)
    directory = "/".join(parts[:-1])
    name = parts[-1]
    if len(parts) == 1:
        return _parse_top_level(unit, name, vocab)
    subject = parts[0]
    if not subject.startswith("sub-") or not vocab.entity_patterns["sub"].fullmatch(subject[4:]):
        allowed = ", ".join(sorted(vocab.opaque_directories))
        raise BidsNameError(unit, f"top-level folder {subject!r} must be sub-<label> or one of {allowed}")
    folders = parts[1:-1]
    session = None
    if folders and folders[0].startswith("ses-"):
        session = folders.pop(0)[4:]
    if len(folders) > 1:
        raise BidsNameError(unit, f"too deeply nested: expected sub-<label>/[ses-<label>/]<datatype>/{name}")
    stem, extension = split_extension(name, vocab)
    warnings: list[str] = []
    entities, suffix = parse_stem(unit, stem, vocab, warnings)
    if entities.get("sub") != subject[4:]:
        warnings.append(f"file name says sub-{entities.get('sub')} but it is in folder {subject}")
    if session is not None and entities.get("ses") != session:
        warnings.append(f"file name says ses-{entities.get('ses')} but it is in folder ses-{session}")
    if not folders:
        return _parse_subject_level(unit, directory, entities, suffix, extension, warnings)
    datatype: str | None = folders[0]
    if folders[0] not in vocab.datatypes:
        warnings.append(f"unknown datatype folder {folders[0]!r}{_suggest(folders[0], vocab.datatypes)}")
        datatype = None
    elif suffix in vocab.suffixes:
        problem = _check_rules(vocab, folders[0], suffix, entities, extension, derivative)
        if problem is not None:
            warnings.append(problem)
    kind: PathKind = "sidecar" if extension == ".json" else "data"
    return BidsPath(unit, kind, directory, entities, datatype, suffix, extension, tuple(warnings))


DERIVATIVES = "derivatives"


def parse_derivative_path(analysis: str, path: str) -> BidsPath:
    """Parse a path inside the derivative dataset an Analysis wrote for one source dataset.

    The result's ``path`` and ``directory`` are prefixed with ``derivatives/<analysis>/``,
    which is where the derivative dataset sits relative to its source dataset, so
    inheritance stays inside the derivative dataset.
    """
    prefix = f"{DERIVATIVES}/{analysis}/"
    root = prefix.rstrip("/")
    if "/" not in path:  # the derivative dataset's top level
        stem, extension = split_extension(path, vocabulary())
        if extension == ".json" and path != "dataset_description.json":
            try:
                entities, suffix = parse_stem(path, stem, vocabulary(), [])
            except BidsNameError:
                return BidsPath(prefix + path, "document", root)
            return BidsPath(prefix + path, "sidecar", root, entities, None, suffix, extension)
        return BidsPath(prefix + path, "document", root)
    try:
        parsed = parse_path(path, derivative=True)
    except BidsNameError as e:
        raise BidsNameError(prefix + e.path, e.reason) from None
    if parsed.kind in ("participants", "participants_json", "sessions", "description", "opaque"):
        return BidsPath(prefix + parsed.path, "document", prefix + parsed.directory)
    return dataclasses.replace(parsed, path=prefix + parsed.path, directory=prefix + parsed.directory)


def parse_record_path(path: str) -> BidsPath:
    """Parse a record's path: raw, or ``derivatives/<analysis>/...`` of a derivative dataset."""
    if path.startswith(DERIVATIVES + "/"):
        analysis, sep, rest = path[len(DERIVATIVES) + 1 :].partition("/")
        if sep and rest:
            return parse_derivative_path(analysis, rest)
    return parse_path(path)


def _parse_top_level(path: str, name: str, vocab: Vocabulary) -> BidsPath:
    if name == "dataset_description.json":
        return BidsPath(path, "description", "", extension=".json")
    if name == "participants.tsv":
        return BidsPath(path, "participants", "", extension=".tsv")
    if name == "participants.json":
        return BidsPath(path, "participants_json", "", extension=".json")
    if name in vocab.top_level_files or name.split(".")[0] in ("samples", "README", "CHANGES", "LICENSE"):
        return BidsPath(path, "document", "")
    stem, extension = split_extension(name, vocab)
    if extension != ".json":
        # Pipelines keep reports and lookup tables here (fMRIPrep: sub-01.html,
        # desc-aseg_dseg.tsv); they are stored and downloaded, never scan records.
        return BidsPath(path, "document", "")
    warnings: list[str] = []
    entities, suffix = parse_stem(path, stem, vocab, warnings)
    return BidsPath(path, "sidecar", "", entities, None, suffix, extension, tuple(warnings))


def _parse_subject_level(
    path: str, directory: str, entities: dict[str, str], suffix: str, extension: str, warnings: list[str]
) -> BidsPath:
    if suffix == "sessions":
        kind: PathKind = "sessions" if extension == ".tsv" else "document"
        return BidsPath(path, kind, directory, entities, None, suffix, extension)
    if suffix == "scans" and extension in (".tsv", ".json"):
        return BidsPath(path, "document", directory, entities, None, suffix, extension)
    if extension == ".json":
        return BidsPath(path, "sidecar", directory, entities, None, suffix, extension, tuple(warnings))
    warnings.append("a data file belongs inside a datatype folder (anat/, func/, dwi/, fmap/ ...)")
    return BidsPath(path, "data", directory, entities, None, suffix, extension, tuple(warnings))
