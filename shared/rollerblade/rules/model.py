"""Pipeline rule files: the typed model and its validation.

A rule file (``pipeline_rules/*.yaml``) holds ``rules:``, a list of rules; each rule says

* ``on`` — ``scan.indexed`` (a record was created or changed), ``job.succeeded`` or
  ``job.failed`` (with ``of``: the Analysis whose job it is);
* ``when`` — an aBIDS query over the triggering record (for job events: each record the
  job produced, or for ``job.failed`` each of its sources); empty means every record;
* ``run`` — an Analysis name, or ``{analysis, params, slice}`` to override its params
  or slice; the slice around the triggering record is what the job processes;
* ``requires`` — an aBIDS query that must match some record of that slice before the
  job is planned (e.g. the session also has a FLAIR);
* ``tag`` — ``{query, tags}`` (``job.succeeded`` rules only): the records the job
  produced that match ``query`` get ``tags`` (e.g. ``final``, ``display``).

Every problem is a :class:`RuleError` naming the file, the line and the rule:
unknown keys (with a did-you-mean), unknown analyses, bad queries, a chain of rules that
loops (the cycle is named) and a rule whose own derivatives would trigger it again.
"""

from __future__ import annotations

import dataclasses
import difflib
import functools
import re
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any, Literal

import yaml

from rollerblade.abids.paths import parse_derivative_path
from rollerblade.analyses.patterns import PatternError, derivative_path
from rollerblade.analyses.spec import AnalysisSpec, yaml_lines
from rollerblade.errors import BidsNameError, FileLineError, InputError, QueryError
from rollerblade.query import ast
from rollerblade.query.evaluate import Matcher, matcher, matches
from rollerblade.query.fields import check_fields, flatten
from rollerblade.query.parser import parse_query
from rollerblade.records import ScanRecord

Trigger = Literal["scan.indexed", "job.succeeded", "job.failed"]
TRIGGERS: tuple[Trigger, ...] = ("scan.indexed", "job.succeeded", "job.failed")
RULE_KEYS = ("name", "description", "on", "of", "when", "run", "requires", "tag")
RUN_KEYS = ("analysis", "params", "slice")
TAG_KEYS = ("query", "tags")
SLICES = ("scan", "session", "subject")


class _Loader(yaml.SafeLoader):
    """YAML 1.2 booleans: only true/false. (YAML 1.1 reads the key ``on`` as True.)"""


_Loader.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers if tag != "tag:yaml.org,2002:bool"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:bool", re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"), list("tTfF")
)


class RuleError(FileLineError):
    """A rule file is invalid; says which file, line and rule."""


@dataclasses.dataclass(frozen=True)
class RunSpec:
    analysis: str
    params: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    slice: str | None = None  # None: the Analysis's own slice


@dataclasses.dataclass(frozen=True)
class TagSpec:
    query: str
    tags: tuple[str, ...]


@dataclasses.dataclass(frozen=True)
class Rule:
    name: str
    on: Trigger
    of: str | None = None
    when: str = ""
    run: RunSpec | None = None
    requires: str = ""
    tag: TagSpec | None = None
    description: str = ""
    source: str = ""
    line: int = 0

    @property
    def where(self) -> str:
        return f"{self.source}:{self.line}" if self.line else self.source

    @property
    def when_node(self) -> ast.Node:
        return parsed_query(self.when)

    @functools.cached_property
    def when_matcher(self) -> Matcher:  # kept on the rule: every event asks every rule
        return query_matcher(self.when)

    @functools.cached_property
    def when_parts(self) -> tuple[Matcher, ...]:
        """The matchers of the terms ``when`` ANDs together (all must match); rules sharing
        a term (``extension=.nii.gz``) share its matcher, so one record asks it once."""
        node = self.when_node
        return tuple(matcher(_unplaced(item)) for item in (node.items if isinstance(node, ast.And) else (node,)))

    @property
    def requires_node(self) -> ast.Node | None:
        return parsed_query(self.requires) if self.requires.strip() else None

    def to_doc(self) -> dict[str, Any]:
        doc = dataclasses.asdict(self)
        if self.tag is not None:
            doc["tag"]["tags"] = list(self.tag.tags)
        return doc

    @classmethod
    def from_doc(cls, doc: Mapping[str, Any]) -> Rule:
        run = doc.get("run")
        tag = doc.get("tag")
        return cls(
            name=doc["name"],
            on=doc["on"],
            of=doc.get("of"),
            when=doc.get("when", ""),
            run=RunSpec(run["analysis"], dict(run.get("params") or {}), run.get("slice")) if run else None,
            requires=doc.get("requires", ""),
            tag=TagSpec(tag["query"], tuple(tag["tags"])) if tag else None,
            description=doc.get("description", ""),
            source=doc.get("source", ""),
            line=doc.get("line", 0),
        )


_PARSED: dict[str, ast.Node] = {}


_MATCHERS: dict[tuple[str, bool], Matcher] = {}


def query_matcher(text: str, *, usable: bool = False) -> Matcher:
    """The compiled matcher of a query text (``usable``: AND no index error), cached by the
    text: hashing a string is cheap, hashing its AST on every record is not."""
    found = _MATCHERS.get((text, usable))
    if found is None:
        node = parsed_query(text)
        if usable:
            node = ast.And((node, ast.Not(ast.Exists(ast.Field("error", 0)))))
        found = _MATCHERS[(text, usable)] = matcher(node)
    return found


def _unplaced(node: ast.Node) -> ast.Node:
    """``node`` with every source position 0: the same term at two places is one node."""
    if isinstance(node, ast.Compare):
        value = ast.Value(node.value.text, node.value.number, 0)
        return ast.Compare(ast.Field(node.field.name, 0), node.op, value)
    if isinstance(node, ast.In):
        return ast.In(ast.Field(node.field.name, 0), tuple(ast.Value(v.text, v.number, 0) for v in node.values))
    if isinstance(node, ast.Exists):
        return ast.Exists(ast.Field(node.field.name, 0))
    if isinstance(node, ast.And):
        return ast.And(tuple(_unplaced(item) for item in node.items))
    if isinstance(node, ast.Or):
        return ast.Or(tuple(_unplaced(item) for item in node.items))
    if isinstance(node, ast.Not):
        return ast.Not(_unplaced(node.item))
    return node


def parsed_query(text: str) -> ast.Node:
    """``parse_query`` with a cache: rules and Analyses parse the same few queries again and again."""
    node = _PARSED.get(text)
    if node is None:
        node = _PARSED[text] = parse_query(text)
    return node


def _unknown(key: Any, known: Iterable[str]) -> str:
    close = difflib.get_close_matches(str(key), list(known), n=1)
    hint = f"did you mean {close[0]!r}?" if close else f"known keys: {', '.join(known)}"
    return f"unknown key {key!r} ({hint})"


def parse_rules(text: str, source: str) -> list[Rule]:
    """The rules of one file's text (syntax and shape only; :func:`validate` checks the rest)."""
    try:
        node = yaml.compose(text, Loader=_Loader)
        data = yaml.load(text, Loader=_Loader)  # noqa: S506 - a SafeLoader subclass
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        problem = getattr(e, "problem", None) or str(e)
        raise RuleError(source, mark.line + 1 if mark else None, f"invalid YAML: {problem}") from None
    lines = yaml_lines(node)
    if data is None:
        return []
    if not isinstance(data, dict) or set(data) - {"rules"}:
        extra = sorted(map(str, set(data) - {"rules"})) if isinstance(data, dict) else []
        raise RuleError(
            source,
            lines.get(extra[0], 1) if extra else 1,
            (_unknown(extra[0], ["rules"]) + "; " if extra else "")
            + "a rule file is a mapping with one key, 'rules:', holding a list of rules",
        )
    items = data.get("rules") or []
    if not isinstance(items, list):
        raise RuleError(source, lines.get("rules"), "'rules' must be a list of rules")
    return [_rule(item, source, lines, f"rules.{i}.") for i, item in enumerate(items)]


def _rule(item: Any, source: str, lines: Mapping[str, int], prefix: str) -> Rule:
    line = lines.get(prefix.rstrip("."), 0)
    if not isinstance(item, dict):
        raise RuleError(source, line, "each rule must be a mapping (name, on, when, run, requires, tag)")
    name = item.get("name")
    label = f"rule {name!r}" if isinstance(name, str) else "rule"

    def fail(key: str, message: str) -> RuleError:
        return RuleError(source, lines.get(prefix + key, line), f"{label}: {key}: {message}")

    for key in item:
        if key not in RULE_KEYS:
            raise RuleError(source, lines.get(prefix + str(key), line), f"{label}: {_unknown(key, RULE_KEYS)}")
    if not isinstance(name, str) or not name.strip():
        raise RuleError(source, line, "rule: missing required key 'name'")
    on = item.get("on")
    if on not in TRIGGERS:
        close = difflib.get_close_matches(str(on), TRIGGERS, n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        raise fail("on", f"{on!r} is not one of {', '.join(TRIGGERS)}{hint}")
    of = item.get("of")
    if on == "scan.indexed" and of is not None:
        raise fail("of", "only job.succeeded and job.failed rules name the Analysis ('of') they follow")
    if on != "scan.indexed" and not isinstance(of, str):
        raise fail("on", f"a {on} rule needs 'of': the Analysis whose jobs it follows")
    run = _run(item.get("run"), fail)
    tag = _tag(item.get("tag"), fail)
    if run is None and tag is None:
        raise RuleError(source, line, f"{label}: says neither what to run ('run') nor what to tag ('tag')")
    if tag is not None and on != "job.succeeded":
        raise fail("tag", "only job.succeeded rules tag (the records the job produced)")
    texts = {}
    for key in ("when", "requires"):
        text = item.get(key) or ""
        if not isinstance(text, str):
            raise fail(key, "must be an aBIDS query (text)")
        texts[key] = text
    rule = Rule(
        name=name,
        on=on,
        of=of,
        when=texts["when"],
        run=run,
        requires=texts["requires"],
        tag=tag,
        description=str(item.get("description") or ""),
        source=source,
        line=line,
    )
    for key, text in (("when", rule.when), ("requires", rule.requires), ("tag", tag.query if tag else "")):
        try:
            check_fields(parse_query(text), text)
        except QueryError as e:
            raise fail(key + (".query" if key == "tag" else ""), str(e)) from None
    return rule


def _run(value: Any, fail: Any) -> RunSpec | None:
    if value is None:
        return None
    if isinstance(value, str):
        return RunSpec(value)
    if not isinstance(value, dict):
        raise fail("run", "must be an Analysis name or a mapping (analysis, params, slice)")
    for key in value:
        if key not in RUN_KEYS:
            raise fail(f"run.{key}", _unknown(key, RUN_KEYS))
    if not isinstance(value.get("analysis"), str):
        raise fail("run", "missing 'analysis': the name of a registered Analysis")
    params = value.get("params") or {}
    if not isinstance(params, dict):
        raise fail("run.params", "must be a mapping")
    slice_kind = value.get("slice")
    if slice_kind is not None and slice_kind not in SLICES:
        raise fail("run.slice", f"{slice_kind!r} is not one of {', '.join(SLICES)}")
    return RunSpec(value["analysis"], params, slice_kind)


def _tag(value: Any, fail: Any) -> TagSpec | None:
    if value is None:
        return None
    if not isinstance(value, dict):
        raise fail("tag", "must be a mapping: {query: <aBIDS query>, tags: [final, ...]}")
    for key in value:
        if key not in TAG_KEYS:
            raise fail(f"tag.{key}", _unknown(key, TAG_KEYS))
    tags = value.get("tags")
    if isinstance(tags, str):
        tags = [tags]
    if not isinstance(tags, list) or not tags or not all(isinstance(t, str) and _valid_tag(t) for t in tags):
        raise fail("tag.tags", "must be a list of tag names (letters, digits, '-' and '_')")
    query = value.get("query") or ""
    if not isinstance(query, str):
        raise fail("tag.query", "must be an aBIDS query (text)")
    return TagSpec(query, tuple(tags))


def _valid_tag(tag: str) -> bool:
    return bool(tag) and len(tag) <= 64 and all(c.isalnum() or c in "-_" for c in tag)


def load_rule_files(folder: Path) -> list[Rule]:
    """Every rule of the ``*.yaml`` / ``*.yml`` files of ``folder`` (sorted by file name)."""
    if not folder.is_dir():
        raise InputError(f"{folder}: not a folder of rule files (*.yaml)")
    rules: list[Rule] = []
    for path in sorted([*folder.glob("*.yaml"), *folder.glob("*.yml")]):
        try:
            text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as e:
            raise RuleError(str(path), None, f"cannot read: {e}") from None
        rules.extend(parse_rules(text, str(path)))
    return rules


def validate(rules: list[Rule], analyses: Mapping[str, AnalysisSpec]) -> None:
    """Check the rules together against the registered Analyses; raises :class:`RuleError`."""
    seen: dict[str, Rule] = {}
    for rule in rules:
        if rule.name in seen:
            raise RuleError(
                rule.source, rule.line, f"rule {rule.name!r} is defined twice (also at {seen[rule.name].where})"
            )
        seen[rule.name] = rule
        for key, name in (("of", rule.of), ("run", rule.run.analysis if rule.run else None)):
            if name is not None and name not in analyses:
                close = difflib.get_close_matches(name, list(analyses), n=1)
                hint = (
                    f"did you mean {close[0]!r}?" if close else f"registered: {', '.join(sorted(analyses)) or 'none'}"
                )
                raise RuleError(
                    rule.source, rule.line, f"rule {rule.name!r}: {key}: unknown analysis {name!r} ({hint})"
                )
    for rule in rules:
        if rule.run is not None and rule.on == "scan.indexed":
            _check_self_trigger(rule, analyses[rule.run.analysis])
    cycle = find_cycle(rules)
    if cycle:
        first = cycle[0]
        path = " → ".join([r.of or "?" for r in cycle] + [first.of or "?"])
        names = ", ".join(r.name for r in cycle)
        raise RuleError(first.source, first.line, f"rules form a cycle: {path} (rules {names}); jobs would never stop")


def find_cycle(rules: list[Rule]) -> list[Rule]:
    """Rules whose chain loops (a job of A runs B ... runs A), in chain order; [] if none."""
    edges: dict[str, list[Rule]] = {}
    for rule in rules:
        if rule.of is not None and rule.run is not None:
            edges.setdefault(rule.of, []).append(rule)
    state: dict[str, int] = {}
    stack: list[Rule] = []

    def visit(node: str) -> list[Rule]:
        state[node] = 1
        for rule in edges.get(node, []):
            assert rule.run is not None
            target = rule.run.analysis
            stack.append(rule)
            if state.get(target) == 1:
                start = next(i for i, r in enumerate(stack) if r.of == target)
                return stack[start:]
            if state.get(target) is None:
                found = visit(target)
                if found:
                    return found
            stack.pop()
        state[node] = 2
        return []

    for node in sorted(edges):
        if state.get(node) is None:
            found = visit(node)
            if found:
                return found
    return []


def _check_self_trigger(rule: Rule, spec: AnalysisSpec) -> None:
    """A scan.indexed rule must not match what its own Analysis writes (derivatives are
    records too, so each would plan a job on the last one's output, forever)."""
    values = {"sub": "S", "ses": "T", "task": "rest", "acq": "A", "run": "1", "desc": "D", "suffix": "T1w"}
    when, accepts = rule.when_node, parsed_query(spec.input)
    for pattern in spec.outputs:
        try:
            path = derivative_path(pattern, {**values, "datatype": "anat", "dataset": "d"})
            parsed = parse_derivative_path(spec.name, path)
        except (PatternError, BidsNameError):
            continue
        record = ScanRecord(
            dataset="d",
            path=parsed.path,
            entities=parsed.all_entities(),
            meta={"RollerbladeJob": "k", "Sources": ["bids:d:x"]},
            participant={},
            session={},
            image={"ndim": 3},
            file={},
        )
        flat = flatten(record)
        if matches(when, flat) and matches(accepts, flat):
            raise RuleError(
                rule.source,
                rule.line,
                f"rule {rule.name!r} would trigger itself: its 'when' matches {spec.name}'s own output "
                f"{pattern!r}; add e.g. NOT exists(analysis) to 'when'",
            )
