"""participants.tsv / sessions.tsv: typed values, bad rows reported, bad files explained."""

from __future__ import annotations

import pytest

from rollerblade.abids.tables import parse_tsv, typed_value
from rollerblade.errors import InputError


def test_values_are_typed() -> None:
    assert [typed_value(v) for v in ["63", "63.5", "n/a", "", "F", "-2", "1e3", "01"]] == [
        63,
        63.5,
        None,
        None,
        "F",
        -2,
        1000.0,
        1,
    ]


def test_integers_beyond_64_bits_stay_text() -> None:
    """Every backend stores 64-bit integers; a longer number is an identifier."""
    assert typed_value("9223372036854775807") == 2**63 - 1
    assert typed_value("9223372036854775808") == "9223372036854775808"
    assert typed_value("-9223372036854775808") == -(2**63)


def test_rows_keyed_by_id_with_typed_columns() -> None:
    content, error = parse_tsv(
        b"participant_id\tage\tsex\nsub-01\t63\tF\nsub-02\tn/a\tM\n", "participants.tsv", id_column="participant_id"
    )
    assert error is None
    assert content["rows"]["sub-01"] == {"participant_id": "sub-01", "age": 63, "sex": "F"}
    assert content["rows"]["sub-02"]["age"] is None


def test_ragged_rows_are_reported_and_the_rest_kept() -> None:
    data = b"participant_id\tage\nsub-01\t63\nsub-02\t70\textra\nsub-03\nsub-04\t55\n"
    content, error = parse_tsv(data, "participants.tsv", id_column="participant_id")
    assert set(content["rows"]) == {"sub-01", "sub-04"}
    assert error is not None
    assert "line 3 has 3 values, the header has 2" in error and "line 4 has 1 values" in error


def test_a_non_utf8_line_loses_only_that_row() -> None:
    data = "participant_id\tname\nsub-01\tJosé\nsub-02\tAnn\n".encode("latin-1")
    content, error = parse_tsv(data, "participants.tsv", id_column="participant_id")
    assert set(content["rows"]) == {"sub-02"}
    # 'é' is byte 0xe9; offset counted by hand: header (19 bytes) + newline + "sub-01\tJos" (10 bytes)
    assert error == "participants.tsv: line 2 is not UTF-8 text (byte 0xe9 at offset 30) (those rows are ignored)"


def test_a_non_utf8_header_is_an_error() -> None:
    with pytest.raises(InputError, match=r"participants.tsv: not UTF-8 text \(byte 0xe2 on line 1, offset 15\)"):
        parse_tsv("participant_id\tâge\nsub-01\t3\n".encode("latin-1"), "participants.tsv", id_column="participant_id")


def test_bom_and_crlf() -> None:
    content, error = parse_tsv(
        "\ufeffparticipant_id\tage\r\nsub-01\t63\r\n".encode(), "participants.tsv", id_column="participant_id"
    )
    assert error is None and content["rows"]["sub-01"] == {"participant_id": "sub-01", "age": 63}


def test_missing_id_column() -> None:
    with pytest.raises(InputError, match="no 'participant_id' column"):
        parse_tsv(b"id\tage\n1\t2\n", "participants.tsv", id_column="participant_id")
