"""``rollerblade demo``, the README's first command, works end to end."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path


def test_demo(tmp_path: Path, docker_engine: None) -> None:
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
    assert "5. Registering and running the example Analyses with the docker executor" in out
    for name in ("brain-mask", "tissue-volumes", "mean-anat", "qc-snapshot"):
        line = next(line for line in out.splitlines() if line.startswith(f"   {name} (sha256:"))
        assert ", 0 failed (" in line and " 0 ran" not in line
    dice = float(out.split("ch2bet: Dice = ")[1].split()[0])
    assert dice >= 0.90
    download = tmp_path / "home" / "demo" / "download"
    assert any(download.glob("*/dataset_description.json"))
    last = out.rstrip().splitlines()
    assert last[-5].startswith("Done in ")
    assert "open http://127.0.0.1:8080/ and log in" in last[-2] and "token create" in last[-1]
