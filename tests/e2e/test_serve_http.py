"""The README's sharing walk-through, as a user types it: ``serve --http`` with the event
loop, a token made by ``token create``, the CLI pointed at the server with ``--server``
(same answers as the local store), a colleague's token seeing only what was shared, and
a clean stop on SIGTERM."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx

from tests.conftest import ROOT

ENV = {**os.environ, "ROLLERBLADE_EXECUTOR": "process", "PYTHONPATH": str(ROOT / "shared")}


def rb(home: Path, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "rollerblade.cli.main", "--home", str(home), *args],
        env={**ENV, **(env or {})},
        capture_output=True,
        text=True,
        timeout=300,
    )


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_share_a_dataset_and_use_it_through_the_api(real_cohort: dict[str, Path], tmp_path: Path) -> None:
    home = tmp_path / "home"
    assert rb(home, "import", str(real_cohort["site-a"]), "--dataset", "site-a").returncode == 0
    assert rb(home, "import", str(real_cohort["site-b"]), "--dataset", "site-b").returncode == 0
    assert rb(home, "user", "add", "colleague").returncode == 0
    mine = rb(home, "token", "create", "--label", "laptop").stdout.strip()
    theirs = rb(home, "--as", "colleague", "token", "create", "--expires", "30d").stdout.strip()
    assert mine.startswith("rbt_") and theirs.startswith("rbt_") and mine != theirs

    port = free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "rollerblade.cli.main", "--home", str(home), "serve", "--http", f"127.0.0.1:{port}"],
        env=ENV,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(url + "/health", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert server.poll() is None and time.monotonic() < deadline, "serve --http did not come up"
            time.sleep(0.2)

        query = "suffix=T1w AND participant.age>=40"
        local = rb(home, "query", "--count", query).stdout.strip()
        remote = rb(home, "--server", url, "query", "--count", query, env={"ROLLERBLADE_TOKEN": mine})
        assert remote.returncode == 0 and remote.stdout.strip() == local and int(local) > 0
        listed = rb(
            home, "--server", url, "query", "dataset=site-a AND suffix=T1w", "--json", env={"ROLLERBLADE_TOKEN": mine}
        )
        assert listed.stdout == rb(home, "query", "dataset=site-a AND suffix=T1w", "--json").stdout

        as_colleague = {"ROLLERBLADE_TOKEN": theirs}
        assert rb(home, "--server", url, "datasets", env=as_colleague).stdout == ""
        assert rb(home, "grant", "colleague", "read", "site-a").returncode == 0
        seen = rb(home, "--server", url, "datasets", env=as_colleague).stdout
        assert [line.split("\t")[0] for line in seen.splitlines()] == ["site-a"]
        out = tmp_path / "download"
        got = rb(home, "--server", url, "download", "sub=001 AND suffix=T1w", str(out), env=as_colleague)
        assert got.returncode == 0 and (out / "site-a" / "dataset_description.json").is_file()
        assert not (out / "site-b").exists()
        assert sorted(p.name for p in out.rglob("*_T1w.nii.gz")) == sorted(
            p.name for p in (real_cohort["site-a"] / "sub-001").rglob("*_T1w.nii.gz")
        )

        refused = rb(home, "--server", url, "delete", "site-a", "--yes", env=as_colleague)
        assert refused.returncode == 2 and "needs a local store" in refused.stderr
        bad = rb(home, "--server", url, "datasets", env={"ROLLERBLADE_TOKEN": theirs[:-3] + "xyz"})
        assert bad.returncode == 1 and "unknown token" in bad.stderr and "Traceback" not in bad.stderr

        audit = rb(home, "audit", "--user", "colleague").stdout
        assert "allowed\tdownload" in audit and "allowed\ttoken-create" in audit
    finally:
        server.send_signal(signal.SIGTERM)
        _, err = server.communicate(timeout=60)
    assert server.returncode == 0 and "stopped" in err and "Traceback" not in err
