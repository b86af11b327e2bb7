"""The aBIDS query language: grammar, errors with positions, and reference semantics."""

from __future__ import annotations

import pytest

from rollerblade.errors import QueryError
from rollerblade.query import ast
from rollerblade.query.evaluate import matches
from rollerblade.query.fields import check_fields, flatten
from rollerblade.query.parser import parse_query
from rollerblade.records import ScanRecord

ISSUE_EXAMPLES = [
    "suffix=T1w AND meta.MagneticFieldStrength=3 AND participant.age>=60 AND participant.age<=70",
    "task=rest AND meta.RepetitionTime=2.0",
    "sub IN (01, 02)",
    "NOT exists(meta.SliceTiming)",
]


def record(**overrides: object) -> ScanRecord:
    base: dict[str, object] = dict(
        dataset="ds1",
        path="sub-01/func/sub-01_task-rest_run-01_bold.nii.gz",
        entities={
            "sub": "01",
            "task": "rest",
            "run": "01",
            "datatype": "func",
            "suffix": "bold",
            "extension": ".nii.gz",
        },
        meta={"RepetitionTime": 2, "MagneticFieldStrength": 3, "Manufacturer": "Siemens", "SliceTiming": [0, 0.5, 1.0]},
        participant={"participant_id": "sub-01", "age": 63, "sex": "F", "handedness": None},
        session={},
        image={"nx": 64, "tr": 2.0},
        file={"size": 1000},
    )
    base.update(overrides)
    return ScanRecord(**base)  # type: ignore[arg-type]


def q(text: str, rec: ScanRecord | None = None) -> bool:
    node = parse_query(text)
    check_fields(node, text)
    return matches(node, flatten(rec or record()))


@pytest.mark.parametrize("text", ISSUE_EXAMPLES)
def test_issue_examples_parse(text: str) -> None:
    check_fields(parse_query(text), text)


def test_precedence_and_parentheses() -> None:
    node = parse_query("a1=1 OR sub=2 AND NOT task=x".replace("a1", "run"))
    assert isinstance(node, ast.Or) and isinstance(node.items[1], ast.And)
    assert isinstance(node.items[1].items[1], ast.Not)
    grouped = parse_query("(run=1 OR sub=2) AND task=x")
    assert isinstance(grouped, ast.And) and isinstance(grouped.items[0], ast.Or)


def test_numbers_compare_as_numbers() -> None:
    assert q("run=1") and q("run=01") and q("run<2") and not q("run>1")
    assert q("meta.RepetitionTime=2.0") and q("meta.RepetitionTime=2")
    assert q("sub IN (01, 02)") and q("sub IN (1)") and not q("sub IN (03, 04)")


def test_quoted_values_compare_as_text() -> None:
    assert q('run="01"') and not q('run="1"')
    assert q("meta.Manufacturer=Siemens") and not q("meta.Manufacturer=siemens")
    assert q("meta.Manufacturer > GE") and q("participant.sex != M")


def test_a_missing_or_null_field_never_matches_a_comparison() -> None:
    assert not q("ses=1") and not q("ses!=1") and q("NOT ses=1")
    assert not q("participant.handedness=R") and not q("exists(participant.handedness)")
    assert not q("meta.Manufacturer=3")  # text is not a number


def test_exists_and_not_exists() -> None:
    assert q("exists(meta.SliceTiming)") and not q("NOT exists(meta.SliceTiming)")
    assert q("NOT exists(meta.SliceTiming)", record(meta={}))


def test_glob() -> None:
    assert q("path ~ 'sub-0*/func/*_bold.nii.gz'") and q("task ~ r??t") and not q("task ~ r?t")
    assert q("path ~ '*[x]*'", record(path="a[x]b")) and not q("path ~ '*[x]*'")  # brackets are literal


def test_issue_example_semantics() -> None:
    older = record(entities={**record().entities, "suffix": "T1w"})
    assert q(ISSUE_EXAMPLES[0], older)
    assert not q(ISSUE_EXAMPLES[0], record(entities={**older.entities}, participant={"age": 71}))


@pytest.mark.parametrize(
    ("text", "position", "token", "message"),
    [
        ("sub=01 AND", 10, "end of query", "expected a field name"),
        ("sub=01 AND (task=rest", 21, "end of query", "expected ')' to close the parenthesis"),
        ("sub 01", 4, "01", "expected an operator"),
        ('sub="01', 4, '"', "unterminated quoted string"),
        ("sub=01 task=rest", 7, "task", "expected AND, OR or the end of the query"),
        ("sub IN 01", 7, "01", "expected '(' after IN"),
        ("sub=01 & task=rest", 7, "&", "unexpected character"),
        ("exists sub", 7, "sub", "expected '(' after exists"),
    ],
)
def test_syntax_errors_name_token_and_position(text: str, position: int, token: str, message: str) -> None:
    with pytest.raises(QueryError) as info:
        parse_query(text)
    err = info.value
    assert (err.position, err.token) == (position, token)
    assert message in str(err) and f"at position {position}" in str(err)


def test_unknown_field_lists_fields_and_suggests() -> None:
    with pytest.raises(QueryError) as info:
        check_fields(parse_query("suffix=T1w AND sufix=bold"), "suffix=T1w AND sufix=bold")
    assert info.value.position == 15 and info.value.suggestions == ("suffix",)
    assert "meta.<Key>" in str(info.value) and "did you mean: suffix?" in str(info.value)
    with pytest.raises(QueryError) as named:
        check_fields(parse_query("subject=01"), "subject=01")
    assert named.value.suggestions == ("sub",)


def test_dynamic_fields_are_checked_against_the_index_except_in_exists() -> None:
    known = {"meta.RepetitionTime", "participant.age"}
    with pytest.raises(QueryError) as info:
        check_fields(parse_query("meta.RepetitionTim=2"), "meta.RepetitionTim=2", known)
    assert info.value.suggestions == ("meta.RepetitionTime",)
    check_fields(parse_query("NOT exists(meta.SliceTiming)"), "NOT exists(meta.SliceTiming)", known)
