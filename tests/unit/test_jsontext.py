"""Strict JSON for metadata files: what Python's json accepts but JSON does not is an error
naming the file and line, never a crash and never a value that prints as invalid JSON."""

from __future__ import annotations

import json

import pytest

from rollerblade.abids.jsontext import MAX_DEPTH, parse_json_object
from rollerblade.errors import InputError


def test_plain_sidecar() -> None:
    text = '{"RepetitionTime": 2.0, "SliceTiming": [0, 0.5], "Nested": {"a": {"b": 1}}}'
    assert parse_json_object(text.encode(), "x.json") == json.loads(text)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('{"EchoTime": 0.03,\n "RepetitionTime": NaN}', "line 2: NaN is not a JSON value"),
        ('{"a": Infinity}', "line 1: Infinity is not a JSON value"),
        ('{"a": [1,\n\n -Infinity]}', "line 3: -Infinity is not a JSON value"),
        ('{"a": 1,\n "b": 1e999}', "line 2: 1e999 is out of range for a number"),
        (
            '{"Id": 123456789012345678901234567890}',
            "line 1: 123456789012345678901234567890 is out of range for an integer",
        ),
        ('{"RepetitionTime": 2,\n "EchoTime": 1,\n "RepetitionTime": 3}', "line 3: duplicate key 'RepetitionTime'"),
        ('{"a": {"x": 1, "x": 2}}', "line 1: duplicate key 'x'"),
    ],
)
def test_values_json_does_not_allow(text: str, message: str) -> None:
    with pytest.raises(InputError, match=f"^x.json: invalid JSON at {message}"):
        parse_json_object(text.encode(), "x.json")


@pytest.mark.parametrize("levels", [MAX_DEPTH + 1, 5_000, 200_000])
def test_deep_nesting_is_an_error_not_a_crash(levels: int) -> None:
    data = b'{"a": ' + b"[" * (levels - 1) + b"]" * (levels - 1) + b"}"
    with pytest.raises(InputError, match=f"x.json: invalid JSON: nested deeper than {MAX_DEPTH} levels"):
        parse_json_object(data, "x.json")


def test_deepest_accepted_nesting() -> None:
    data = b'{"a": ' + b"[" * (MAX_DEPTH - 1) + b"]" * (MAX_DEPTH - 1) + b"}"
    assert parse_json_object(data, "x.json")["a"] is not None


def test_huge_integer_literal() -> None:
    with pytest.raises(InputError, match="x.json: invalid JSON: Exceeds the limit"):
        parse_json_object(b'{"a": ' + b"9" * 5000 + b"}", "x.json")
