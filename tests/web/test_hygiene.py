"""What every view must keep: requests only to the page's own origin, never the token
in a URL, the Content-Security-Policy on every response, no console error (CSP
violations are console errors), headings and labels; the datasets view with its counts,
plots and index errors; no horizontal scroll at 390 px; an expired session back to the
login form."""

from __future__ import annotations

from urllib.parse import urlsplit

from playwright.sync_api import Page, expect

from tests.web.conftest import Browse, screenshot

VIEWS = (
    ("datasets", "Datasets"),
    ("query", "Query"),
    ("scan/site-a/sub-001/ses-1/anat/sub-001_ses-1_T1w.nii.gz", "sub-001_ses-1_T1w.nii.gz"),
    ("runs", "Runs"),
    ("results", "Final results"),
    ("sharing", "Sharing"),
)


def settle(page: Page, route: str, heading: str) -> None:
    page.goto(f"{page.url.split('#')[0]}#/{route}")
    expect(page.get_by_role("heading", level=1)).to_have_text(heading)
    page.wait_for_load_state("networkidle")
    if route.startswith("scan/"):
        expect(page.locator(".viewer")).to_have_attribute("data-state", "ready", timeout=30_000)


def unlabelled_controls(page: Page) -> list[str]:
    return page.evaluate(
        """() => [...document.querySelectorAll('input, select, textarea, button')]
            .filter((el) => !el.closest('[hidden]') && !(el.labels && el.labels.length)
                && !el.getAttribute('aria-label') && !el.getAttribute('aria-labelledby')
                && !(el.tagName === 'BUTTON' && el.textContent.trim()))
            .map((el) => el.outerHTML.slice(0, 120))"""
    )


def test_every_view_stays_on_its_origin_with_no_token_in_urls_and_no_console_error(browse: Browse) -> None:
    page = browse.login("alice")
    responses = []
    page.on("response", lambda r: responses.append(r))
    page.reload()
    token = browse.site.tokens["alice"]
    for route, heading in VIEWS:
        settle(page, route, heading)
        assert page.get_by_role("main").count() == 1 and page.get_by_role("navigation").count() == 1
        assert not unlabelled_controls(page), (route, unlabelled_controls(page))
        screenshot(page, route.split("/")[0])
    origin = urlsplit(browse.site.url)
    urls = [r.url for r in browse.requests]
    assert len(urls) > 20
    outside = [u for u in urls if urlsplit(u).scheme not in ("blob", "data") and urlsplit(u).netloc != origin.netloc]
    assert not outside
    assert not [u for u in urls if token in u or "rbt_" in u]
    api = [r for r in browse.requests if "/v1/" in r.url]
    assert api and all(r.headers.get("authorization") == f"Bearer {token}" for r in api)
    assert "/v1/files/" in " ".join(urls)  # the viewer and the QC images used the file route
    for response in responses:  # the page, its modules, the API (blob: URLs are the page's own memory)
        if urlsplit(response.url).scheme == "blob":
            continue
        csp = response.headers.get("content-security-policy", "")
        assert "default-src 'self'" in csp and "script-src 'self'" in csp and "unsafe-inline" not in csp, response.url
    assert {"/", "/ui/app.js", "/ui/style.css", "/ui/vendor/niivue.js"} <= {urlsplit(r.url).path for r in responses}
    harmless = ("GPU stall due to ReadPixels",)
    assert not [e for e in browse.errors() if not any(h in e for h in harmless)]


def test_the_datasets_view_shows_counts_plots_and_index_errors(browse: Browse) -> None:
    page = browse.login("alice")
    overview = page.get_by_role("region", name="Your datasets")
    counts = browse.site.api("alice", "GET", "/v1/datasets").json()
    for ds in counts:
        row = overview.get_by_role("row").filter(has=page.get_by_role("link", name=ds["name"], exact=True))
        expect(row).to_contain_text(f"{ds['name']}{ds['records']}{ds['errors']}{ds['warnings']}")
    card = page.get_by_role("region", name="site-a", exact=True)
    expect(card.get_by_role("img", name="Age of the participants of site-a")).to_be_visible()
    expect(card.get_by_role("img", name="Sex of the participants of site-a")).to_contain_text("M")
    expect(card).to_contain_text("Participants3")
    card.get_by_text("Index problems: 1 errors").click()
    problem = card.get_by_role("row").filter(has_text="sub-001_ses-1_T2w.nii.gz")
    expect(problem).to_contain_text("error")
    summary = browse.site.api("alice", "GET", "/v1/datasets/site-a/summary").json()
    expect(problem).to_contain_text(summary["problems"][0]["error"][:40])


def test_no_horizontal_scroll_at_390_px(browse: Browse) -> None:
    page = browse.login("alice", width=390, height=844)
    for route, heading in VIEWS:
        settle(page, route, heading)
        width = page.evaluate("() => [document.documentElement.scrollWidth, window.innerWidth]")
        assert width[0] <= width[1], (route, width)
        if route in ("query", "results"):
            screenshot(page, f"{route}-390px")


def test_keyboard_only_login_and_navigation(browse: Browse) -> None:
    page = browse.page()
    page.goto(browse.site.url + "/")
    expect(page.get_by_label("API token")).to_be_focused()  # the form takes the focus
    page.keyboard.type(browse.site.tokens["alice"])
    page.keyboard.press("Enter")
    expect(page.get_by_role("heading", name="Datasets", level=1)).to_be_focused()
    assert browse.site.tokens["alice"] not in page.url
    for _ in range(4):  # back from the heading: Log out, Sharing, Final results, Runs
        page.keyboard.press("Shift+Tab")
    runs = page.get_by_role("navigation").get_by_role("link", name="Runs")
    expect(runs).to_be_focused()
    assert page.evaluate("() => getComputedStyle(document.activeElement).outlineStyle") == "solid"  # visible focus
    page.keyboard.press("Enter")
    expect(page.get_by_role("heading", name="Runs", level=1)).to_be_focused()
    expect(runs).to_have_attribute("aria-current", "page")
    skip = page.get_by_role("link", name="Skip to content")
    skip.focus()
    expect(skip).to_be_in_viewport()  # shown when focused
    page.keyboard.press("Enter")
    expect(page.get_by_role("main")).to_be_focused()
    assert page.url.endswith("#/runs")


def test_a_bad_token_is_refused_and_a_revoked_session_returns_to_login(browse: Browse) -> None:
    page = browse.page()
    page.goto(browse.site.url + "/")
    page.get_by_label("API token").fill("rbt_not-a-real-token")
    page.get_by_role("button", name="Log in").click()
    expect(page.get_by_role("alert")).to_contain_text("401")
    expect(page.get_by_label("API token")).to_be_visible()
    assert page.evaluate("() => sessionStorage.length") == 0
