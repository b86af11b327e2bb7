"""What the rule handler keeps between events (the rules by the document's generation,
each rule's compiled queries) never hides a change: new rules, and an Analysis registered
again, are seen by the very next event; what a batch shares is shared within it only."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from rollerblade.demo.cohort import write_cohort
from rollerblade.pipeline import automation, importing
from rollerblade.pipeline.analyses import register_analysis
from rollerblade.pipeline.messages import ScanIndexed
from rollerblade.settings import Settings
from rollerblade.stack import Stack, open_stack
from tests.conftest import ACTOR, ROOT, admins

T1W = "sub-{sub}/ses-1/anat/sub-{sub}_ses-1_T1w.nii.gz"


def rules(text: str, folder: Path) -> Path:
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    (folder / "rules.yaml").write_text("rules:\n" + text)
    return folder


def rule(name: str, run: str, when: str = "suffix=T1w AND extension=.nii.gz AND NOT exists(analysis)") -> str:
    return f"  - name: {name}\n    on: scan.indexed\n    when: {when}\n    run: {run}\n"


@pytest.fixture
def store(tmp_path: Path) -> Iterator[tuple[Stack, str, list[str]]]:
    """One imported site (2 of 6 subjects, tiny images), brain-mask and qc-snapshot registered."""
    (name, source), *_ = write_cohort(tmp_path / "src", subjects=6, images="tiny", seed=5).items()
    stack = open_stack(Settings(home=tmp_path / "home", executor="process"))
    admins(stack.access)
    importing.import_dataset(source, dataset=name, storage=stack.storage, index=stack.index, bus=stack.bus, actor=ACTOR)
    for analysis in ("brain-mask", "qc-snapshot"):
        register_analysis(ROOT / "analyses" / analysis, index=stack.index, executor=stack.executor, actor=ACTOR)
    subs = sorted({r.entities["sub"] for r in stack.index.records(dataset=name) if "sub" in r.entities})
    yield stack, name, [T1W.format(sub=s) for s in subs[:2]]
    stack.close()


def jobs_of(stack: Stack) -> dict[str, tuple[str, str, str, str]]:
    return {j.key: (j.rule, j.analysis, j.version, j.sources[0]) for j in stack.index.jobs()}


def test_new_rules_are_seen_by_the_next_event(store: tuple[Stack, str, list[str]], tmp_path: Path) -> None:
    stack, dataset, (first, second) = store
    services = stack.services
    automation.apply_rules(services, rules(rule("mask", "brain-mask"), tmp_path / "r"), actor=ACTOR)
    automation.on_scans_indexed(services, [ScanIndexed(dataset, first)], actor=ACTOR)
    assert sorted(jobs_of(stack).values()) == [("mask", "brain-mask", "1.0.0", first)]

    # the same rule now with params, and a second one (in the same batch as a duplicate event)
    changed = rule("mask", "{analysis: brain-mask, params: {erode_mm: 3.0}}") + rule("qc", "qc-snapshot")
    automation.apply_rules(services, rules(changed, tmp_path / "r"), actor=ACTOR)
    events = [ScanIndexed(dataset, first), ScanIndexed(dataset, first)]
    automation.on_scans_indexed(services, events, actor=ACTOR)
    jobs = [j for j in stack.index.jobs() if j.sources == (first,)]
    assert sorted((j.rule, dict(j.params).get("erode_mm", 0.0)) for j in jobs) == [
        ("mask", 3.0),  # the override: a new key
        ("mask", 4.0),  # brain-mask's own value (the first rules)
        ("qc", 0.0),
    ]

    # rules that no longer match the second record: nothing planned for it
    automation.apply_rules(services, rules(rule("mask", "brain-mask", "suffix=bold"), tmp_path / "r"), actor=ACTOR)
    automation.on_scans_indexed(services, [ScanIndexed(dataset, second)], actor=ACTOR)
    assert [j for j in stack.index.jobs() if j.sources == (second,)] == []


def test_an_analysis_registered_again_is_seen_by_the_next_event(
    store: tuple[Stack, str, list[str]], tmp_path: Path
) -> None:
    stack, dataset, (first, _) = store
    services = stack.services
    automation.apply_rules(services, rules(rule("mask", "brain-mask"), tmp_path / "r"), actor=ACTOR)
    automation.on_scans_indexed(services, [ScanIndexed(dataset, first)], actor=ACTOR)
    (before,) = jobs_of(stack).values()
    assert before[2] == "1.0.0"

    newer = tmp_path / "brain-mask"
    shutil.copytree(ROOT / "analyses" / "brain-mask", newer)
    spec = newer / "analysis.yaml"
    spec.write_text(spec.read_text().replace("version: 1.0.0", "version: 1.1.0"))
    register_analysis(newer, index=stack.index, executor=stack.executor, actor=ACTOR)
    automation.on_scans_indexed(services, [ScanIndexed(dataset, first)], actor=ACTOR)
    assert sorted(v[2] for v in jobs_of(stack).values()) == ["1.0.0", "1.1.0"]

    automation.on_scans_indexed(services, [ScanIndexed(dataset, first)], actor=ACTOR)  # delivered again
    assert len(jobs_of(stack)) == 2
