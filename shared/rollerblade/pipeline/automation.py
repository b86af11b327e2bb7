"""The rule engine's use cases: apply, read and explain the rules; handle ``scan.indexed``
and ``job.succeeded``/``job.failed`` by planning the jobs the rules ask for.

The applied rules live in storage at :data:`RULES_KEY` (one JSON document: the rules,
who applied them and when), so the local event loop and every Cloud Function instance
read the same set; each reader caches it by the object's generation.

Evaluation is level-triggered: an event says "look at this record"; the rules that fire
plan the jobs of the slice around it, and :func:`~rollerblade.pipeline.jobflow.queue_jobs`
queues only keys that are new. Duplicated, late or reordered events plan nothing twice.
"""

from __future__ import annotations

import dataclasses
import datetime
import json
import threading
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from rollerblade.access.model import Principal
from rollerblade.analyses.spec import AnalysisSpec
from rollerblade.errors import NotFound
from rollerblade.pipeline.analyses import get_analysis
from rollerblade.pipeline.completion import TagRules
from rollerblade.pipeline.events import publish_all
from rollerblade.pipeline.jobflow import JobRequest, QueueReport, queue_many
from rollerblade.pipeline.messages import SCANS_TOPIC, JobResult, ScanIndexed
from rollerblade.pipeline.services import Services
from rollerblade.query import ast
from rollerblade.query.evaluate import Matcher
from rollerblade.query.fields import flatten
from rollerblade.query.parser import parse_query
from rollerblade.records import Actor, ScanRecord
from rollerblade.rules.engine import effective_spec, fired
from rollerblade.rules.model import Rule, Trigger, load_rule_files, query_matcher, validate

RULES_KEY = "config/pipeline-rules.json"

_cache: dict[int, tuple[int, list[Rule], str]] = {}  # storage -> (generation, rules, applied_by)
_cache_lock = threading.Lock()


def apply_rules(services: Services, folder: Path, *, actor: Actor) -> list[Rule]:
    """Validate the rule files of ``folder`` against the registered Analyses and make them
    the rules every handler uses (replacing the previous set)."""
    rules = load_rule_files(folder)
    specs = {doc["name"]: AnalysisSpec.from_doc(doc["spec"]) for doc in services.catalog.analyses()}
    validate(rules, specs)
    doc = {
        "rules": [r.to_doc() for r in rules],
        "applied_by": actor,
        "applied_at": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
    }
    services.storage.put_bytes(key=RULES_KEY, data=json.dumps(doc, indent=2).encode())
    return rules


def evaluate_everything(services: Services) -> int:
    """Ask the rule engine to look at every record again (after the rules changed):
    one ``scan.indexed`` per dataset, covering all its records; returns how many."""
    names = [d.name for d in services.catalog.datasets()]
    publish_all(services.bus, [ScanIndexed(n, "").to_message() for n in names], topic=SCANS_TOPIC)
    return len(names)


def current_rules(services: Services) -> list[Rule]:
    """The applied rules ([] when none), cached by the stored document's generation."""
    return _applied(services)[0]


def rules_applier(services: Services) -> str:
    """Who applied the rules in force ("" when none): rules act with that user's rights."""
    return _applied(services)[1]


def _applied(services: Services) -> tuple[list[Rule], str]:
    generation = services.storage.generation(key=RULES_KEY)
    if generation is None:
        return [], ""
    with _cache_lock:
        cached = _cache.get(id(services.storage))
        if cached is not None and cached[0] == generation:
            return cached[1], cached[2]
    try:
        doc = json.loads(services.storage.read(key=RULES_KEY))
    except NotFound:
        return [], ""
    rules = [Rule.from_doc(r) for r in doc.get("rules", [])]
    applier = str(doc.get("applied_by") or "")
    with _cache_lock:
        _cache[id(services.storage)] = (generation, rules, applier)
    return rules, applier


def get_rule(services: Services, name: str) -> Rule:
    for rule in current_rules(services):
        if rule.name == name:
            return rule
    known = ", ".join(r.name for r in current_rules(services)) or "no rules applied"
    raise NotFound("rule", f"{name} ({known})")


def tag_rules_of(services: Services) -> TagRules:
    """For :func:`~rollerblade.pipeline.completion.on_job_ended`: the (query, tags) of the
    job.succeeded rules of an Analysis that tag."""

    def of(analysis: str) -> list[tuple[ast.Node, tuple[str, ...]]]:
        return [
            (ast.And((r.when_node, parse_query(r.tag.query))), r.tag.tags)
            for r in current_rules(services)
            if r.on == "job.succeeded" and r.of == analysis and r.tag is not None
        ]

    return of


# -- evaluation ----------------------------------------------------------------------


@dataclasses.dataclass
class Planned:
    """What the rules planned for a batch of events."""

    fired: list[tuple[str, str, str]] = dataclasses.field(default_factory=list)  # (rule, dataset, path)
    waiting: list[tuple[str, str, str]] = dataclasses.field(default_factory=list)  # requires not met yet
    reports: list[QueueReport] = dataclasses.field(default_factory=list)

    @property
    def queued(self) -> int:
        return sum(len(r.queued) for r in self.reports)


def on_scans_indexed(
    services: Services, events: Sequence[ScanIndexed], *, actor: Actor, dry_run: bool = False
) -> Planned:
    """Plan what the ``scan.indexed`` rules ask for the records these events name."""
    rules = [r for r in current_rules(services) if r.on == "scan.indexed" and r.run is not None]
    planned = Planned()
    if not rules:
        return planned
    slices = _Slices(services)
    triggers = [(r, None) for r in _records_of(services, events, slices)]
    _plan(services, rules, "scan.indexed", triggers, planned, actor=actor, dry_run=dry_run, slices=slices)
    return planned


def on_job_result(services: Services, result: JobResult, *, actor: Actor, dry_run: bool = False) -> Planned:
    """Plan what the ``job.succeeded``/``job.failed`` rules of the job's Analysis ask, for
    each record the job produced (succeeded) or processed (failed)."""
    trigger: Trigger = "job.succeeded" if result.succeeded else "job.failed"
    rules = [r for r in current_rules(services) if r.on == trigger and r.of == result.analysis and r.run is not None]
    planned = Planned()
    job = services.jobs.get_job(key=result.key)
    if not rules or job is None:
        return planned
    paths = [f"derivatives/{job.analysis}/{p}" for p in job.outputs] if result.succeeded else list(job.sources)
    records = [services.index.get_record(dataset=job.dataset, path=p) for p in paths]
    triggers = [(r, result.analysis) for r in records if r is not None and r.error is None]
    _plan(services, rules, trigger, triggers, planned, actor=actor, dry_run=dry_run)
    return planned


#: Paths per query when the records events name are read together (Firestore's IN limit).
_PATHS_PER_QUERY = 30


def _records_of(services: Services, events: Sequence[ScanIndexed], slices: _Slices) -> list[ScanRecord]:
    """The records the events name, in the events' order, each once: a path names one
    record; "" or a folder ending in "/" names every record under it. A path in a
    participant's folder is read with the participant's records, which are the subject
    slice the rules would read next (``slices`` keeps them: each record read once); other
    named paths of a dataset are read together, up to 30 per query."""
    seen: set[tuple[str, str]] = set()
    wanted: dict[str, list[str]] = {}  # dataset -> single paths
    labels: dict[str, set[str]] = {}  # dataset -> participants whose folders hold named paths
    for event in events:
        if (event.dataset, event.path) in seen:
            continue
        seen.add((event.dataset, event.path))
        if event.path != "" and not event.path.endswith("/"):
            wanted.setdefault(event.dataset, []).append(event.path)
            folder = event.path.split("/", 1)[0]
            if folder.startswith("sub-") and "/" in event.path:
                labels.setdefault(event.dataset, set()).add(folder[4:])
    found: dict[tuple[str, str], ScanRecord] = {}
    for dataset, subjects in labels.items():
        slices.read(dataset, subjects)
    for dataset, named in wanted.items():
        paths = []
        for path in named:
            if (record := slices.read_as(dataset, path)) is not None:
                found[(dataset, path)] = record
            else:  # not in a participant's folder, or not among its records (a name it does not parse to)
                paths.append(path)
        for start in range(0, len(paths), _PATHS_PER_QUERY):
            chunk = paths[start : start + _PATHS_PER_QUERY]
            node = ast.And((ast.text_equals("dataset", dataset), ast.one_of("path", chunk)))
            found.update(((r.dataset, r.path), r) for r in services.index.query(node=node))
    records: list[ScanRecord] = []
    seen.clear()
    for event in events:
        if (event.dataset, event.path) in seen:
            continue
        seen.add((event.dataset, event.path))
        if event.path == "" or event.path.endswith("/"):
            records.extend(services.index.records(dataset=event.dataset, prefix=event.path))
        elif (record := found.get((event.dataset, event.path))) is not None:
            records.append(record)
    return records


def _plan(
    services: Services,
    rules: list[Rule],
    trigger: Trigger,
    triggers: Iterable[tuple[ScanRecord, str | None]],
    planned: Planned,
    *,
    actor: Actor,
    dry_run: bool,
    slices: _Slices | None = None,
) -> None:
    """Two passes over the batch: which rules fire on which record (rights checked, one
    firing per rule and slice), then, once the slices of them all are read together, the
    jobs of each firing (``requires`` evaluated inside the slice)."""
    analyses = _Analyses(services)
    done: set[tuple[str, str, str]] = set()
    slices = slices or _Slices(services)
    rights = _ApplierRights(services)
    firings: list[tuple[Rule, _Run, ScanRecord, dict[str, Any]]] = []
    for record, of in triggers:
        if record.error is not None:
            continue
        flat = slices.flat(record)
        for rule in fired(rules, trigger, of, flat):
            assert rule.run is not None
            if not rights.allow(rule.name, rule.run.analysis, record.dataset, audit=not dry_run):
                continue
            run = analyses.run_of(rule)
            if run is None:
                continue  # unregistered since the rules were applied: nothing to run
            slice_key = (rule.name, record.dataset, _slice_id(run.spec.slice, record))
            if slice_key in done:
                continue
            done.add(slice_key)
            slices.want(run.spec.slice, record)
            firings.append((rule, run, record, flat))
    requests: list[JobRequest] = []
    for rule, run, record, flat in firings:
        planned.fired.append((rule.name, record.dataset, record.path))
        around = slices.around(run.spec.slice, record, flat)
        if run.requires is not None and not any(run.requires(f) for _, f in around):
            planned.waiting.append((rule.name, record.dataset, record.path))
            continue
        members = [r for r, f in around if run.accepted(f)]
        if members:
            requests.append(JobRequest(run.spec, run.doc, members, rule.name))
    if requests:
        planned.reports += queue_many(services, requests, actor=actor, dry_run=dry_run)


@dataclasses.dataclass(frozen=True)
class _Run:
    """How a rule runs its Analysis: the effective spec (params overridden, slice replaced),
    the registered document, and the compiled ``requires`` and input queries."""

    spec: AnalysisSpec
    doc: dict[str, Any]
    requires: Matcher | None
    accepted: Matcher


class _Analyses:
    """The registered Analyses, read once per batch of events (a re-registered Analysis is
    seen by the next batch), and each rule's :class:`_Run` of them."""

    def __init__(self, services: Services) -> None:
        self.services = services
        self._specs: dict[str, tuple[AnalysisSpec, dict[str, Any]] | None] = {}
        self._runs: dict[str, _Run | None] = {}

    def run_of(self, rule: Rule) -> _Run | None:
        """None when the rule's Analysis is not registered (any more)."""
        if rule.name in self._runs:
            return self._runs[rule.name]
        assert rule.run is not None
        name = rule.run.analysis
        if name not in self._specs:
            try:
                self._specs[name] = get_analysis(name, index=self.services.index)
            except NotFound:
                self._specs[name] = None
        found = self._specs[name]
        run = None
        if found is not None:
            spec = effective_spec(found[0], rule)
            requires = query_matcher(rule.requires) if rule.requires.strip() else None
            run = _Run(spec, found[1], requires, query_matcher(spec.input, usable=True))
        self._runs[rule.name] = run
        return run


class _ApplierRights:
    """Rules act with the rights of the user who applied them, checked each time they fire
    (read once per batch of events): ``run`` on the Analysis and ``read`` on the dataset.
    A refusal is audited once per (rule, dataset) and batch; the rule does not fire."""

    def __init__(self, services: Services) -> None:
        self.services = services
        self.denied: set[tuple[str, str]] = set()
        self._loaded = False
        self.datasets: set[str] | None = set()
        self.analyses: set[str] | None = set()
        self.principal = Principal("", "anonymous")

    def _load(self) -> None:
        guard = self.services.guard
        applier = rules_applier(self.services)
        self.principal = Principal(applier or "nobody", "anonymous")
        user = guard.access.get_user(name=applier)
        if user is not None:
            self.principal = Principal(user.name, "user", admin=user.admin)
            self.datasets = guard.holding(self.principal, "dataset", "read")
            self.analyses = guard.holding(self.principal, "analysis", "run")
        self._loaded = True

    def allow(self, rule: str, analysis: str, dataset: str, *, audit: bool) -> bool:
        if not self._loaded:
            self._load()
        if (self.analyses is None or analysis in self.analyses) and (self.datasets is None or dataset in self.datasets):
            return True
        if audit and (rule, dataset) not in self.denied:
            self.denied.add((rule, dataset))
            why = f"rule {rule!r} applied by {self.principal.name}, who may not run {analysis!r} on dataset {dataset!r}"
            self.services.guard.deny(self.principal, "rule-fire", "dataset", dataset, why)
        return False


class _Slices:
    """The records around the triggering records of a batch of events. A scan slice is the
    record itself; a session or subject slice is filtered in Python from its participant's
    records (raw and derivatives). The participants a batch needs are read together: one
    indexed query per dataset and :attr:`BATCH` participant labels."""

    #: Labels per query. Firestore allows 30 in an ``IN``; SQLite's planner, weighing the
    #: sort the ``sub`` index needs against a walk of the dataset in path order, walks
    #: the whole dataset once the labels are more than about a tenth to a quarter of its
    #: participants (by its sampled statistics): 11 labels of a 100-participant dataset
    #: took 9 ms where 8 took 0.25 ms.
    BATCH = 8

    def __init__(self, services: Services) -> None:
        self.services = services
        self._by_subject: dict[tuple[str, str], list[tuple[ScanRecord, dict[str, Any]]]] = {}
        self._wanted: dict[str, set[str]] = {}  # label -> datasets, not read yet
        self._flat: dict[tuple[str, str], tuple[ScanRecord, dict[str, Any]]] = {}  # flattened already

    def flat(self, record: ScanRecord) -> dict[str, Any]:
        """The flat view of a record (a trigger), worked out once: kept for the slices."""
        known = self._flat.get((record.dataset, record.path))
        if known is None or known[0] is not record:
            known = self._flat[(record.dataset, record.path)] = (record, flatten(record))
        return known[1]

    def read_as(self, dataset: str, path: str) -> ScanRecord | None:
        """The record at ``path`` if a participant's records read so far hold it."""
        known = self._flat.get((dataset, path))
        return known[0] if known is not None else None

    def read(self, dataset: str, labels: Iterable[str]) -> None:
        """Read these participants' records of ``dataset`` (those not read yet)."""
        for label in labels:
            if (dataset, label) not in self._by_subject:
                self._wanted.setdefault(label, set()).add(dataset)
        self._read()

    def want(self, kind: str, record: ScanRecord) -> None:
        """Note that :meth:`around` will be asked for this record's ``kind`` slice."""
        sub = record.entities.get("sub")
        if kind != "scan" and sub and (record.dataset, sub) not in self._by_subject:
            self._wanted.setdefault(sub, set()).add(record.dataset)

    def _read(self) -> None:
        by_dataset: dict[str, list[str]] = {}
        for sub, datasets in self._wanted.items():
            for dataset in datasets:
                by_dataset.setdefault(dataset, []).append(sub)
                self._by_subject.setdefault((dataset, sub), [])
        self._wanted = {}
        for dataset, labels in sorted(by_dataset.items()):
            labels.sort()
            for start in range(0, len(labels), self.BATCH):
                chunk = labels[start : start + self.BATCH]
                node = ast.And((ast.text_equals("dataset", dataset), ast.one_of("sub", chunk)))
                for record in self.services.index.query(node=node):
                    label = record.entities.get("sub")
                    if label is not None:
                        known = self._flat.get((record.dataset, record.path))
                        if known is None or known[0] != record:
                            known = self._flat[(record.dataset, record.path)] = (record, flatten(record))
                        self._by_subject.setdefault((record.dataset, label), []).append(known)

    def around(self, kind: str, record: ScanRecord, flat: dict[str, Any]) -> list[tuple[ScanRecord, dict[str, Any]]]:
        """(record, flat view) of each record of the slice."""
        sub = record.entities.get("sub")
        if kind == "scan" or not sub:
            return [(record, flat)]
        key = (record.dataset, sub)
        if key not in self._by_subject:
            self.want(kind, record)
        if self._wanted:
            self._read()
        if kind == "subject":
            return self._by_subject[key]
        ses = record.entities.get("ses")  # a session slice: the same session, or both without one
        return [(r, f) for r, f in self._by_subject[key] if r.entities.get("ses") == ses]


def _slice_id(kind: str, record: ScanRecord) -> str:
    sub, ses = record.entities.get("sub"), record.entities.get("ses")
    if kind == "scan" or not sub:
        return record.path
    return f"sub-{sub}/ses-{ses}" if kind == "session" and ses else f"sub-{sub}"


def explain(services: Services, dataset: str, path: str) -> list[dict[str, Any]]:
    """Which rules match this record and why, and the jobs they would plan (nothing runs)."""
    record = services.index.get_record(dataset=dataset, path=path)
    if record is None:
        raise NotFound("record", f"{dataset}/{path}")
    flat = flatten(record)
    lines = []
    for rule in current_rules(services):
        trigger: Trigger = rule.on
        # a job.succeeded rule fires on what its Analysis produced; others on any record
        applies = trigger != "job.succeeded" or record.path.startswith(f"derivatives/{rule.of}/")
        match = applies and bool(fired([rule], trigger, rule.of, flat))
        entry: dict[str, Any] = {
            "rule": rule.name,
            "on": rule.on + (f" of {rule.of}" if rule.of else ""),
            "when": rule.when or "(every record)",
            "matches": match,
            "jobs": [],
        }
        if not applies:
            entry["why"] = f"the record was not produced by {rule.of}"
        elif not match:
            entry["why"] = "'when' does not match this record"
        if match and rule.run is not None:
            planned = Planned()
            _plan(services, [rule], trigger, [(record, rule.of)], planned, actor=Actor("explain"), dry_run=True)
            if planned.waiting:
                entry["why"] = f"waits: nothing in the slice matches requires ({rule.requires})"
            for report in planned.reports:
                for job in report.planned:
                    state = "done" if job.key in report.done else "exists" if job.key in report.busy else "would run"
                    entry["jobs"].append(
                        {
                            "key": job.key,
                            "analysis": rule.run.analysis,
                            "slice": job.slice_id,
                            "sources": list(job.sources),
                            "state": state,
                        }
                    )
        if match and rule.tag is not None:
            entry["tags"] = list(rule.tag.tags)
        lines.append(entry)
    return lines
