"""The docs are tested: query examples run, the CLI reference is current, settings are documented."""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

import pytest

from rollerblade.query.fields import check_fields
from rollerblade.query.parser import parse_query
from rollerblade.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = re.findall(r"```abids\n(.*?)\n```", (ROOT / "docs" / "query-language.md").read_text(), re.S)


def test_there_are_examples() -> None:
    assert len(EXAMPLES) >= 8


@pytest.mark.parametrize("text", EXAMPLES)
def test_query_examples_parse(text: str) -> None:
    check_fields(parse_query(text), text)


def test_cli_reference_is_current() -> None:
    import sys

    sys.path.insert(0, str(ROOT / "scripts"))
    try:
        from cli_reference import render
    finally:
        sys.path.pop(0)
    expected = render()
    assert (ROOT / "docs" / "cli-reference.md").read_text() == expected, (
        "docs/cli-reference.md is stale: python scripts/cli_reference.py > docs/cli-reference.md"
    )


def test_every_setting_is_documented() -> None:
    text = (ROOT / "docs" / "settings.md").read_text()
    for field in dataclasses.fields(Settings):
        assert f"`{field.name}`" in text and f"ROLLERBLADE_{field.name.upper()}" in text


def test_readme_starts_with_the_two_commands() -> None:
    head = (ROOT / "README.md").read_text().split("```")[1]
    assert "make demo" in head and "make test" in head
    makefile = (ROOT / "Makefile").read_text()
    assert "rollerblade demo" in makefile and "pytest" in makefile
