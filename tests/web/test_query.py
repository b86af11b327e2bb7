"""The query builder as a user works it: log in with a token, mistype a field and take
the did-you-mean suggestion, watch the live count agree with the API, page and sort the
results, download the selection as a BIDS zip."""

from __future__ import annotations

import io
import zipfile

from playwright.sync_api import expect

from tests.web.conftest import Browse, screenshot


def count_of(browse: Browse, query: str) -> int:
    answer = browse.site.api("alice", "GET", "/v1/count", params={"query": query})
    assert answer.status_code == 200, answer.text
    return int(answer.json()["count"])


def test_typo_gets_did_you_mean_and_the_live_count_matches_the_api(browse: Browse) -> None:
    page = browse.login("alice")
    page.get_by_role("navigation").get_by_role("link", name="Query").click()
    box = page.get_by_role("combobox", name="aBIDS query")
    box.fill("sufix=T1w AND participant.age>=40")
    alert = page.locator(".query-alert")
    expect(alert).to_contain_text("unknown field 'sufix'")
    expect(alert).to_contain_text("did you mean: suffix?")
    expect(page.locator("output.count")).to_have_text("—")
    page.get_by_role("button", name="Replace sufix with suffix").click()
    expect(box).to_have_value("suffix=T1w AND participant.age>=40")
    expect(alert).to_be_hidden()
    query = "suffix=T1w AND participant.age>=40"
    expected = count_of(browse, query)
    assert expected > 0
    expect(page.locator("output.count")).to_have_text(str(expected))

    # Field completion from /v1/fields: type a prefix, pick with the keyboard.
    box.fill("")
    box.type("participant.se")
    option = page.get_by_role("option", name="participant.sex")
    expect(option).to_be_visible()
    box.press("ArrowDown")
    box.press("Enter")
    expect(box).to_have_value("participant.sex")
    box.type("=F AND suffix=T1w")
    expect(page.locator("output.count")).to_have_text(str(count_of(browse, "participant.sex=F AND suffix=T1w")))

    # Typing fast: every keystroke asks, only the last answer counts.
    box.fill("")
    box.type("extension=.nii.gz AND datatype=anat", delay=15)
    expect(page.locator("output.count")).to_have_text(str(count_of(browse, "extension=.nii.gz AND datatype=anat")))

    # Results: first page, sort by age on the page, the CLI command.
    box.fill(query)
    page.get_by_role("button", name="Show results").click()
    rows = page.locator("table.records tbody tr")
    expect(rows).to_have_count(expected)
    page.get_by_role("button", name="Age", exact=True).click()
    expect(page.locator("th[aria-sort=ascending]")).to_have_text("Age ▲")
    ages = [float(t) for t in page.locator("table.records tbody tr td:nth-child(11)").all_inner_texts()]
    assert ages == sorted(ages) and min(ages) >= 40
    expect(page.get_by_role("textbox", name="CLI command")).to_have_value(f"rollerblade query '{query}'")
    screenshot(page, "query")


def test_paging_walks_every_record_once(browse: Browse) -> None:
    page = browse.login("alice")
    page.goto(browse.site.url + "/#/query")
    query = ""  # everything alice may read: more than one page of 50
    page.get_by_role("combobox", name="aBIDS query").fill(query)
    page.get_by_role("button", name="Show results").click()
    seen: list[str] = []
    while True:
        expect(page.locator("table.records tbody tr").first).to_be_visible()
        seen += page.locator("table.records tbody tr td:last-child").all_inner_texts()
        following = page.get_by_role("button", name="Next page")
        if following.is_disabled():
            break
        following.click()
        expect(page.locator("table.records caption")).to_contain_text(f"Page {len(seen) // 50 + 1}:")
    assert len(seen) == count_of(browse, query) > 50
    assert len(set(seen)) > 50  # file names repeat across datasets, but not this much


def test_download_the_selection_as_a_bids_zip(browse: Browse) -> None:
    page = browse.login("alice")
    page.goto(browse.site.url + "/#/query")
    query = "dataset=site-b AND suffix=T1w"
    page.get_by_role("combobox", name="aBIDS query").fill(query)
    expect(page.locator("output.count")).to_have_text(str(count_of(browse, query)))
    with page.expect_download() as info:
        page.get_by_role("button", name="Download as BIDS zip").click()
    download = info.value
    assert download.suggested_filename == "selection.zip"
    names = zipfile.ZipFile(io.BytesIO(download.path().read_bytes())).namelist()
    images = sorted(n for n in names if n.endswith("_T1w.nii.gz"))
    assert images == [f"site-b/sub-{s}/ses-{n}/anat/sub-{s}_ses-{n}_T1w.nii.gz" for s in ("002", "005") for n in (1, 2)]
    assert "site-b/dataset_description.json" in names and "site-b/participants.tsv" in names
    assert not any(n.startswith("site-a/") for n in names)
