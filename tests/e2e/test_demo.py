"""``rollerblade demo``, the README's first command, works end to end."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path


def test_demo(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "rollerblade.cli.main", "--home", str(tmp_path / "home"), "demo", "--subjects", "9"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "Building a 9-participant, 3-site cohort" in out
    for site in ("site-a", "site-b", "site-c"):
        assert f"   {site}: " in out
    assert "truncated or corrupt" in out  # the deliberately broken scan is reported, not fatal
    assert "1 records  scans the index flagged as broken" in out
    download = tmp_path / "home" / "demo" / "download"
    assert any(download.glob("*/dataset_description.json"))
    assert out.rstrip().splitlines()[-2].startswith("Done in ")
