"""Runs from the page: choose an Analysis for a query's selection, start it, follow its
progress to done, and find the results the pipeline rules tagged final in the final
results view (cohort table, CSV, plot against age, QC snapshots)."""

from __future__ import annotations

import csv
import io

from playwright.sync_api import expect

from tests.web.conftest import Browse, screenshot

#: One new T1w of site-b: masked from the page, then measured and snapshotted by the rules.
SELECTION = "dataset=site-b AND sub=002 AND ses=1 AND suffix=T1w AND extension=.nii.gz"


def test_start_a_run_follow_it_and_see_the_final_results(browse: Browse) -> None:
    page = browse.login("alice")
    page.goto(browse.site.url + "/#/query")
    page.get_by_role("combobox", name="aBIDS query").fill(SELECTION)
    expect(page.locator("output.count")).to_have_text("1")
    page.get_by_label("Analysis", exact=True).select_option("brain-mask")
    page.get_by_role("button", name="Run on this selection").click()
    expect(page.locator(".run-box .outcome")).to_contain_text("brain-mask: 1 jobs planned")
    page.get_by_role("link", name="Follow the run").click()

    progress = page.locator(".run[data-analysis=brain-mask]")
    expect(progress).to_have_attribute("data-active", "0", timeout=60_000)
    expect(progress.locator(".done-total")).to_have_text("3/3 done")  # 2 seeded + this one
    for analysis in ("tissue-volumes", "qc-snapshot"):  # planned by the rules after the mask
        run = page.locator(f".run[data-analysis={analysis}]")
        expect(run.locator(".done-total")).to_have_text("3/3 done", timeout=60_000)
    expect(page.get_by_role("progressbar", name="brain-mask: 3 of 3 jobs done")).to_be_visible()
    jobs = page.get_by_role("region", name="Jobs, newest first")
    expect(jobs.get_by_role("row").filter(has_text="site-b/sub-002/ses-1").first).to_contain_text("succeeded")
    # The rules and the jobs they planned.
    rule = page.get_by_role("article", name="tissue-volumes-after-mask")
    expect(rule).to_contain_text("Planned recently: 3 jobs (3 succeeded)")
    # A job's logs, with the job list showing every Analysis.
    page.get_by_label("Analysis", exact=True).select_option(label="All Analyses")
    first = jobs.get_by_role("row").filter(has_text="tissue-volumes").filter(has_text="site-b/sub-002").first
    first.get_by_role("button", name="Logs").click()
    expect(first.locator("pre.logs")).to_contain_text("GMVolumeML")
    screenshot(page, "runs")

    page.get_by_role("navigation").get_by_role("link", name="Final results").click()
    cohort = page.get_by_role("region", name="Final values per participant and session")
    row = cohort.get_by_role("row").filter(has_text="site-b")
    expect(row).to_have_count(1)
    for key in ("BrainVolumeML", "CSFVolumeML", "GMVolumeML", "WMVolumeML"):
        expect(cohort.get_by_role("columnheader", name=key)).to_be_visible()
    expect(cohort.get_by_role("row")).to_have_count(4)  # header + 2 seeded sessions + this one

    # One colour per dataset in the plot, one point per session.
    plot = page.get_by_role("img", name="GMVolumeML against age")
    expect(plot.locator("circle.point")).to_have_count(3)
    expect(plot.locator("circle.point[data-group=site-b]")).to_have_count(1)
    fills = set(plot.locator("circle.point").evaluate_all("(points) => points.map((p) => p.getAttribute('fill'))"))
    assert len(fills) == 2
    page.get_by_label("Value", exact=True).select_option("BrainVolumeML")
    expect(page.get_by_role("img", name="BrainVolumeML against age")).to_be_visible()

    # QC snapshots, fetched with the token and shown through object URLs.
    images = page.get_by_role("img", name="QC snapshot of", exact=False)
    expect(images).to_have_count(3)
    images.first.scroll_into_view_if_needed()
    page.wait_for_function(
        "() => [...document.querySelectorAll('.snapshot img')].every((i) => i.complete && i.naturalWidth > 0)"
    )
    assert all(src.startswith("blob:") for src in images.evaluate_all("(xs) => xs.map((x) => x.src)"))

    with page.expect_download() as info:
        page.get_by_role("button", name="Export CSV").click()
    table = list(csv.DictReader(io.StringIO(info.value.path().read_text())))
    assert [(r["dataset"], r["sub"], r["ses"]) for r in table] == [
        ("site-a", "001", "1"), ("site-a", "004", "1"), ("site-b", "002", "1"),
    ]  # fmt: skip
    assert all(float(r["GMVolumeML"]) > 0 and float(r["BrainVolumeML"]) > 0 for r in table)
    screenshot(page, "final-results")
