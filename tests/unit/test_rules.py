"""Pipeline rule files: the example set validates, and every kind of mistake is reported
with its file, line and a way out."""

from __future__ import annotations

from pathlib import Path

import pytest

from rollerblade.analyses.spec import AnalysisSpec, load_spec, parse_spec
from rollerblade.query.evaluate import matches
from rollerblade.query.fields import flatten
from rollerblade.query.parser import parse_query
from rollerblade.records import ScanRecord
from rollerblade.rules.engine import fired
from rollerblade.rules.model import RuleError, find_cycle, load_rule_files, parse_rules, validate

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def specs() -> dict[str, AnalysisSpec]:
    return {p.parent.name: load_spec(p) for p in (ROOT / "analyses").glob("*/analysis.yaml")}


def check(text: str, specs: dict[str, AnalysisSpec]) -> None:
    validate(parse_rules(text, "rules.yaml"), specs)


def test_the_example_rules_validate(specs: dict[str, AnalysisSpec]) -> None:
    rules = load_rule_files(ROOT / "pipeline_rules")
    validate(rules, specs)
    names = [r.name for r in rules]
    assert names[0] == "mask-every-t1w" and rules[0].line == 5  # counted by hand in anat.yaml
    assert {r.run.analysis for r in rules if r.run} == {"brain-mask", "tissue-volumes", "qc-snapshot"}


RULE = """rules:
  - name: r1
    on: scan.indexed
    when: suffix=T1w AND NOT exists(analysis)
    run: brain-mask
"""


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (RULE.replace("    when:", "    wen:"), "rules.yaml:4: rule 'r1': unknown key 'wen' (did you mean 'when'?)"),
        (
            RULE.replace("run: brain-mask", "run: brain-msk"),
            "unknown analysis 'brain-msk' (did you mean 'brain-mask'?)",
        ),
        (RULE.replace("scan.indexed", "scan.index"), "rules.yaml:3: rule 'r1': on: 'scan.index' is not one of"),
        (RULE.replace("suffix=T1w", "sufix=T1w"), "rules.yaml:4: rule 'r1': when: unknown field 'sufix'"),
        (RULE.replace("suffix=T1w AND", "suffix=T1w AND AND"), "rules.yaml:4: rule 'r1': when:"),
        (
            RULE + "  - name: r1\n    on: scan.indexed\n    run: qc-snapshot\n",
            "rules.yaml:6: rule 'r1' is defined twice",
        ),
        (RULE.replace("    run: brain-mask\n", ""), "says neither what to run ('run') nor what to tag ('tag')"),
        (RULE.replace("run: brain-mask", "tag: {tags: [final]}"), "only job.succeeded rules tag"),
        (RULE.replace("scan.indexed", "job.succeeded"), "needs 'of': the Analysis whose jobs it follows"),
        ("rules:\n  - name: x\n    on: [scan.indexed\n", "rules.yaml:4: invalid YAML"),
        ("rule:\n  - name: x\n", "unknown key 'rule' (did you mean 'rules'?)"),
    ],
)
def test_mistakes_name_file_line_and_fix(text: str, message: str, specs: dict[str, AnalysisSpec]) -> None:
    with pytest.raises(RuleError) as caught:
        check(text, specs)
    assert message in str(caught.value)


SMOOTH = """name: smooth
version: "1"
image: {build: .}
command: [python3, smooth.py]
input: extension=.nii.gz
outputs: ["sub-{sub}[_ses-{ses}]_desc-smooth_T1w.nii.gz"]
"""


def test_a_rule_that_matches_its_own_output_is_refused(specs: dict[str, AnalysisSpec]) -> None:
    with_smooth = {**specs, "smooth": parse_spec(SMOOTH, "smooth/analysis.yaml")}
    text = "rules:\n  - name: smooth-all\n    on: scan.indexed\n    when: suffix=T1w\n    run: smooth\n"
    message = r"rules.yaml:2: rule 'smooth-all' would trigger itself: its 'when' matches smooth's own output"
    with pytest.raises(RuleError, match=message):
        check(text, with_smooth)
    check(text.replace("suffix=T1w", "suffix=T1w AND NOT exists(analysis)"), with_smooth)
    # brain-mask's own input query already refuses its outputs: no loop is possible
    check(text.replace("run: smooth", "run: brain-mask"), specs)


def test_a_chain_that_loops_is_named(specs: dict[str, AnalysisSpec]) -> None:
    text = """rules:
  - name: a
    on: job.succeeded
    of: brain-mask
    run: qc-snapshot
  - name: b
    on: job.succeeded
    of: qc-snapshot
    run: tissue-volumes
  - name: c
    on: job.succeeded
    of: tissue-volumes
    run: brain-mask
  - name: d
    on: job.succeeded
    of: tissue-volumes
    tag: {tags: [final]}
"""
    rules = parse_rules(text, "rules.yaml")
    assert [r.name for r in find_cycle(rules)] == ["a", "b", "c"]
    with pytest.raises(RuleError, match="brain-mask → qc-snapshot → tissue-volumes → brain-mask"):
        validate(rules, specs)
    assert find_cycle([r for r in rules if r.name != "c"]) == []  # a chain without the back edge is fine


def record(path: str, **entities: str) -> ScanRecord:
    return ScanRecord("ds", path, dict(entities), {}, {}, {}, {}, {})


def test_fired() -> None:
    rules = load_rule_files(ROOT / "pipeline_rules")
    t1w = record("sub-01/ses-1/anat/sub-01_ses-1_T1w.nii.gz", sub="01", ses="1", suffix="T1w", extension=".nii.gz")
    mask = record(
        "derivatives/brain-mask/sub-01/ses-1/anat/sub-01_ses-1_desc-brain_mask.nii.gz",
        sub="01",
        ses="1",
        desc="brain",
        suffix="mask",
        extension=".nii.gz",
    )
    assert [r.name for r in fired(rules, "scan.indexed", None, flatten(t1w))] == ["mask-every-t1w"]
    assert fired(rules, "scan.indexed", None, flatten(mask)) == []
    after = [r.name for r in fired(rules, "job.succeeded", "brain-mask", flatten(mask))]
    assert after == ["tissue-volumes-after-mask", "snapshot-the-mask", "final-brain-mask"]


def test_tag_queries() -> None:
    tagged = ScanRecord(
        "ds",
        "derivatives/a/sub-01/anat/x_mask.nii.gz",
        {"suffix": "mask"},
        {"RollerbladeTags": ["final"]},
        {},
        {},
        {},
        {},
    )
    plain = ScanRecord(
        "ds", "sub-01/anat/x_T1w.nii.gz", {"suffix": "T1w"}, {"RollerbladeTags": ["final"]}, {}, {}, {}, {}
    )
    assert matches(parse_query("tag=final"), flatten(tagged))
    assert not matches(parse_query("tag=final"), flatten(plain))  # only derivatives carry tags
    assert matches(parse_query("tag!=display AND tag IN (x, final)"), flatten(tagged))
