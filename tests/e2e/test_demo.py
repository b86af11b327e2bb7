"""``rollerblade demo``, the README's first command, works end to end; then its store is
served and the web page's final-results view shows the demo's final derivatives (the
README's screenshot is this one)."""

from __future__ import annotations

import json
import re
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import httpx
from playwright.sync_api import Browser, expect

from tests.conftest import ROOT
from tests.e2e.test_serve_http import ENV, free_port
from tests.web.conftest import screenshot, wait_for


def test_demo(tmp_path: Path, docker_engine: None, browser: Browser) -> None:
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
    assert last[-4].startswith("Done in ")
    assert "open http://127.0.0.1:8080/ and log in" in last[-2] and "token create" in last[-1]
    final_results_view(tmp_path / "home", browser, tmp_path / "serve.log")


def final_results_view(home: Path, browser: Browser, log: Path) -> None:
    """The demo store behind ``serve --http``, as its last lines say; the page's final
    results show what ``rollerblade query 'tag=final'`` selects."""

    def rb(*args: str) -> str:
        done = subprocess.run(
            [sys.executable, "-m", "rollerblade.cli.main", "--home", str(home), *args],
            capture_output=True, text=True, env=ENV, timeout=120,
        )  # fmt: skip
        assert done.returncode == 0, done.stderr
        return done.stdout

    final = [json.loads(line) for line in rb("query", "tag=final", "--json").splitlines()]
    sessions = {(r["dataset"], r["entities"]["sub"], r["entities"].get("ses")) for r in final}
    assert final and sessions
    token = rb("token", "create", "--label", "web").split()[0]
    port = free_port()
    with open(log, "wb") as out:
        server = subprocess.Popen(
            [sys.executable, "-m", "rollerblade.cli.main", "--home", str(home), "serve", "--no-events",
             "--http", f"127.0.0.1:{port}"],
            env=ENV, stdout=out, stderr=out, start_new_session=True,
        )  # fmt: skip
    url = f"http://127.0.0.1:{port}"

    def healthy() -> bool:
        assert server.poll() is None, log.read_text()[-3000:]
        try:
            return httpx.get(url + "/health", timeout=2).status_code == 200
        except httpx.HTTPError:
            return False

    context = browser.new_context(viewport={"width": 1280, "height": 900})
    try:
        wait_for(healthy, "serve --http on the demo store", 60, log)
        page = context.new_page()
        page.goto(url + "/")
        page.get_by_label("API token").fill(token)
        page.get_by_role("button", name="Log in").click()
        page.get_by_role("link", name="Final results").click()
        counts = re.compile(rf"{len(final)} final derivatives? of {len(sessions)} sessions?\.")
        expect(page.get_by_text(counts)).to_be_visible()
        table = page.get_by_role("table", name="Final values per participant and session")
        expect(table.locator("tbody tr")).to_have_count(len(sessions))
        page.wait_for_function(
            "() => [...document.querySelectorAll('.snapshot img')].every((i) => i.complete && i.naturalWidth > 0)"
        )
        shot = screenshot(page, "demo-final-results")
        shutil.copyfile(shot, ROOT / "docs" / "img" / "final-results.png")
    finally:
        context.close()
        server.send_signal(signal.SIGTERM)
        server.wait(timeout=60)
