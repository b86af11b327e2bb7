"""Settings: env vars, then explicit overrides; unknown names and bad values fail clearly."""

from __future__ import annotations

from pathlib import Path

import pytest

from rollerblade.errors import SettingsError
from rollerblade.settings import Settings


def test_env_then_overrides(tmp_path: Path) -> None:
    settings = Settings.from_env({"ROLLERBLADE_HOME": str(tmp_path / "a"), "ROLLERBLADE_WORKERS": "2", "PATH": "x"})
    assert settings.home == tmp_path / "a" and settings.workers == 2
    assert settings.index_path == tmp_path / "a" / "index.sqlite"
    assert Settings.from_env({"ROLLERBLADE_HOME": "/x"}, home=tmp_path, workers=None).home == tmp_path


def test_unknown_variable_suggests() -> None:
    with pytest.raises(SettingsError, match="unknown setting ROLLERBLADE_HOM \\(did you mean ROLLERBLADE_HOME\\?\\)"):
        Settings.from_env({"ROLLERBLADE_HOM": "/x"})


@pytest.mark.parametrize(
    ("var", "value", "message"),
    [
        ("ROLLERBLADE_WORKERS", "many", "must be a whole number"),
        ("ROLLERBLADE_WORKERS", "0", "must be at least 1"),
        ("ROLLERBLADE_BACKEND", "s3", "must be 'local'"),
    ],
)
def test_bad_values(var: str, value: str, message: str) -> None:
    with pytest.raises(SettingsError, match=message):
        Settings.from_env({var: value})


def test_function_actor_is_a_setting(tmp_path: Path) -> None:
    """functions/main.py records its changes as this actor; a deployment may set it."""
    assert Settings.from_env({"ROLLERBLADE_FUNCTION_ACTOR": "x"}, home=tmp_path).function_actor == "x"
    assert Settings.from_env({}, home=tmp_path).function_actor == "cloud-function"
