"""The web page against a live ``rollerblade serve --http`` (the event loop and the API
in one process, jobs on the process executor), driven by Debian's Chromium through
Playwright; one browser for the session.

The store: three datasets imported from a generated cohort of real brain images by
``alice`` (who manages them and registered the example Analyses), ``bob`` with no right,
the example pipeline rules applied without ``mask-every-t1w`` (so only runs a user
starts plan masks; the rules measure, snapshot and tag after them), and one index error
(a broken image) in ``site-a``. Before the tests, brain-mask runs over two site-a T1w
images through the API and the rules finish the work: masks, tissue volumes and QC
snapshots tagged ``final`` / ``display`` exist when the first test starts.

Each test gets a fresh browser context (its own sessionStorage) and a ``Browse`` helper
that records every request and every console message of its pages; screenshots go to
test-artifacts/web/.
"""

from __future__ import annotations

import dataclasses
import re
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.sync_api import Browser, BrowserContext, ConsoleMessage, Page, Request

from rollerblade.access.model import Principal
from rollerblade.demo.cohort import DEMO, write_cohort
from rollerblade.pipeline import sharing, usecases_data, usecases_work
from rollerblade.settings import Settings
from rollerblade.stack import open_stack
from tests.conftest import ACTOR, ROOT, admins
from tests.e2e.test_serve_http import ENV, free_port

ARTIFACTS = ROOT / "test-artifacts" / "web"
ADMIN = Principal(ACTOR, "user", admin=True)
ALICE = Principal("alice", "user")
#: The scans masked before the tests (site-a, first session of both participants).
SEEDED = "dataset=site-a AND sub IN (001, 004) AND ses=1 AND suffix=T1w AND extension=.nii.gz AND NOT exists(analysis)"
#: A file whose bytes are not an image: an index error of site-a.
BROKEN = "sub-001/ses-1/anat/sub-001_ses-1_T2w.nii.gz"


@dataclasses.dataclass
class WebSite:
    url: str
    home: Path
    tokens: dict[str, str]  # user -> bearer token
    log: Path

    def api(self, user: str, method: str, route: str, **kwargs: Any) -> httpx.Response:
        headers = {"Authorization": f"Bearer {self.tokens[user]}"}
        return httpx.request(method, self.url + route, headers=headers, timeout=60, **kwargs)


def rules_without_masking(folder: Path) -> Path:
    """pipeline_rules/ minus mask-every-t1w (masks only where a user runs brain-mask)."""
    text = (ROOT / "pipeline_rules" / "anat.yaml").read_text()
    blocks = re.split(r"(?m)^(?=  - name: )", text)
    kept = [b for b in blocks if not b.startswith("  - name: mask-every-t1w\n")]
    assert len(kept) == len(blocks) - 1, "pipeline_rules/anat.yaml has no rule mask-every-t1w"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "anat.yaml").write_text("".join(kept))
    return folder


def populate(home: Path, work: Path) -> dict[str, str]:
    cohort = write_cohort(work / "cohort", subjects=7, modalities=DEMO, seed=5)
    site_a = work / "site-a"
    shutil.copytree(cohort["site-a"], site_a)
    (site_a / BROKEN).write_bytes(b"this is not a NIfTI image")
    stack = open_stack(Settings(home=home, executor="process"))
    try:
        admins(stack.access)
        services = stack.services
        for name in ("alice", "bob"):
            sharing.add_user(services, ADMIN, name, email=f"{name}@lab.example")
        usecases_data.import_dataset(services, ALICE, site_a, "site-a")
        usecases_data.import_dataset(services, ALICE, cohort["site-b"], "site-b")
        usecases_data.import_dataset(services, ALICE, cohort["site-c"], "site-c")
        for analysis in ("brain-mask", "tissue-volumes", "qc-snapshot"):
            usecases_work.register_analysis(services, ALICE, ROOT / "analyses" / analysis)
        usecases_work.apply_rules(services, ADMIN, rules_without_masking(work / "rules"))
        return {name: sharing.create_token(services, Principal(name, "user"))[0] for name in ("alice", "bob")}
    finally:
        stack.close()


def wait_for(check: Any, what: str, timeout: float, log: Path | None = None) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        found = check()
        if found:
            return found
        if time.monotonic() > deadline:
            tail = log.read_text()[-3000:] if log and log.exists() else ""
            raise AssertionError(f"timed out waiting for {what}\n{tail}")
        time.sleep(0.2)


@pytest.fixture(scope="session")
def web_site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[WebSite]:
    work = tmp_path_factory.mktemp("web")
    home = work / "home"
    tokens = populate(home, work)
    port = free_port()
    log = work / "serve.log"
    with open(log, "wb") as out:
        server = subprocess.Popen(
            [sys.executable, "-m", "rollerblade.cli.main", "--home", str(home), "serve", "--poll", "0.2",
             "--http", f"127.0.0.1:{port}"],
            env=ENV, stdout=out, stderr=out, start_new_session=True,
        )  # fmt: skip
    site = WebSite(f"http://127.0.0.1:{port}", home, tokens, log)

    def healthy() -> bool:
        assert server.poll() is None, log.read_text()[-3000:]
        try:
            return httpx.get(site.url + "/health", timeout=2).status_code == 200
        except httpx.HTTPError:
            return False

    try:
        wait_for(healthy, "serve --http", 60, log)
        started = site.api("alice", "POST", "/v1/runs", json={"analysis": "brain-mask", "query": SEEDED})
        assert started.status_code == 202 and started.json()["planned"] == 2, started.text

        def seeded() -> bool:
            final = site.api("alice", "GET", "/v1/tags/final").json()["records"]
            display = site.api("alice", "GET", "/v1/tags/display").json()["records"]
            return (
                sum(r["entities"]["suffix"] == "dseg" for r in final) == 2
                and sum(r["path"].endswith(".png") for r in display) == 2
            )

        wait_for(seeded, "the seeded masks, tissue volumes and snapshots", 180, log)
        yield site
    finally:
        server.send_signal(signal.SIGTERM)
        try:
            server.wait(timeout=60)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()


@dataclasses.dataclass
class Browse:
    """A browser context on the site with every request and console message recorded."""

    site: WebSite
    context: BrowserContext
    requests: list[Request] = dataclasses.field(default_factory=list)
    console: list[ConsoleMessage] = dataclasses.field(default_factory=list)
    page_errors: list[str] = dataclasses.field(default_factory=list)

    def page(self, *, width: int = 1280, height: int = 900) -> Page:
        page = self.context.new_page()
        page.set_viewport_size({"width": width, "height": height})
        page.on("request", lambda r: self.requests.append(r))
        page.on("console", lambda m: self.console.append(m))
        page.on("pageerror", lambda e: self.page_errors.append(str(e)))
        return page

    def login(self, user: str, **size: int) -> Page:
        page = self.page(**size)
        page.goto(self.site.url + "/")
        page.get_by_label("API token").fill(self.site.tokens[user])
        page.get_by_role("button", name="Log in").click()
        page.get_by_text(f"Signed in as {user}").wait_for()
        return page

    def errors(self) -> list[str]:
        """Console errors and uncaught exceptions (CSP violations are console errors)."""
        return [m.text for m in self.console if m.type == "error"] + self.page_errors


@pytest.fixture
def browse(browser: Browser, web_site: WebSite) -> Iterator[Browse]:
    context = browser.new_context(accept_downloads=True)
    helper = Browse(web_site, context)
    yield helper
    context.close()
    assert not helper.page_errors, helper.page_errors


def screenshot(page: Page, name: str) -> Path:
    """A full-page screenshot of a view as a test artifact."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    return path
