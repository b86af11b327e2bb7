"""Web page benchmark (issue 11): Debian's Chromium driven by Playwright against
``rollerblade serve --http`` in its own process, on the embedded default. In one run:

1. **First meaningful paint** on a demo-sized store (the demo's generated 3-site cohort,
   imported): from navigation to the datasets table drawn with its counts, logged in
   (the token put in sessionStorage before the page loads). Baseline: the browser loading
   ``/health`` (a navigation with nothing to draw).
2. **Live count while typing** on a ``--datasets`` x 100-record index (100k by default;
   bench/api_bench.py builds it): the query text set in the query box as a user's last
   keystroke does, until the count of that text is shown. Baselines: ``GET /v1/count`` of
   the same text over HTTP, and the page's debounce (it waits for typing to pause).
3. **Scan view of a 10 MB NIfTI**: the real Colin27 T1 as int16 with scanner-like noise
   (10.5 MB gzipped, 181x217x181) from navigation until NiiVue has drawn it. Baselines:
   fetching the same bytes in the page (network and token only) and over httpx.

    python bench/web_bench.py             # ~3 min on 2 cores
    python bench/web_bench.py --quick     # 100 datasets, fewer repeats: under a minute
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import httpx
import nibabel as nib
import numpy as np
from playwright.sync_api import Browser, Page, sync_playwright

sys.path.insert(0, str(Path(__file__).parent))
from api_bench import build_store, load, start_server  # noqa: E402
from rollerblade.demo import sources  # noqa: E402
from rollerblade.demo.cohort import DEMO, write_cohort  # noqa: E402
from rollerblade.pipeline import sharing, usecases_data  # noqa: E402
from rollerblade.records import default_actor  # noqa: E402
from rollerblade.settings import Settings  # noqa: E402
from rollerblade.stack import open_stack  # noqa: E402

CHROMIUM = "/usr/lib/chromium/chromium"  # Debian's package (no browser download)
TOKEN_KEY = "rollerblade.token"  # where the page keeps its token (api.js)
COUNT_QUERIES = ("suffix=T1w", "participant.age>60", "meta.RepetitionTime<2", "task=rest AND extension=.nii.gz")
DEBOUNCE_MS = 100  # query.js waits this long after the last keystroke
BIG = "sub-01/anat/sub-01_T1w.nii.gz"


def quantiles(samples: list[float]) -> str:
    ordered = sorted(samples)
    p95 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.95))]
    return f"median {statistics.median(ordered):7.1f}  p95 {p95:7.1f} ms"


def big_scan(root: Path) -> Path:
    """A one-scan BIDS dataset whose T1w is ~10 MB gzipped: real anatomy, real noise."""
    img = nib.load(sources.colin27())
    data = np.asarray(img.dataobj).astype(np.float32) * 40
    noisy = np.clip(data + np.random.default_rng(0).normal(0, 200, data.shape), 0, 32000).astype(np.int16)
    target = root / BIG
    target.parent.mkdir(parents=True)
    nib.save(nib.Nifti1Image(noisy, img.affine), target)
    (root / "dataset_description.json").write_text('{"Name": "big", "BIDSVersion": "1.10.0"}')
    return target


def demo_store(home: Path, work: Path) -> tuple[dict[str, str], int]:
    """The demo's cohort plus the big scan, imported by the store's admin; its token."""
    stack = open_stack(Settings(home=home, executor="process"))
    admin = sharing.local_principal(stack.services, default_actor())
    roots = write_cohort(work / "cohort", subjects=9, modalities=DEMO)
    size = big_scan(work / "big").stat().st_size
    for name, root in [*roots.items(), ("big", work / "big")]:
        usecases_data.import_dataset(stack.services, admin, root, name)
    token = sharing.create_token(stack.services, admin)[0]
    stack.close()
    return {"admin": token}, size


def logged_in(browser: Browser, token: str) -> Page:
    context = browser.new_context(viewport={"width": 1280, "height": 800})
    context.add_init_script(f"sessionStorage.setItem({TOKEN_KEY!r}, {token!r})")
    return context.new_page()


#: The page's first contentful paint (ms from navigation), once the browser reports it.
PAINT = """new Promise((resolve) => {
  const look = () => {
    const entry = performance.getEntriesByName('first-contentful-paint')[0];
    if (entry) resolve(entry.startTime); else setTimeout(look, 5);
  };
  look();
})"""


def first_paint(browser: Browser, url: str, token: str, repeats: int) -> None:
    drawn, painted, bare = [], [], []
    for _ in range(repeats):
        page = logged_in(browser, token)
        page.goto(f"{url}/#/datasets")
        page.locator("main table tbody tr").first.wait_for()
        drawn.append(page.evaluate("performance.now()"))
        painted.append(page.evaluate(PAINT))
        page.goto(f"{url}/health", wait_until="load")
        bare.append(page.evaluate("performance.getEntriesByType('navigation')[0].loadEventEnd"))
        page.context.close()
    print(f"   datasets table drawn (logged in)   {quantiles(drawn)}")
    print(f"   first contentful paint of the page {quantiles(painted)}")
    print(f"   baseline: /health loaded           {quantiles(bare)}")
    print(f"   target: first meaningful paint < 1000 ms: {'met' if statistics.median(drawn) < 1000 else 'NOT met'}")


#: Sets the query box's text as a last keystroke would and waits for that text's count.
TYPE_AND_WAIT = """async (text) => {
  const input = document.querySelector('input.query-input');
  const out = document.querySelector('output.count');
  const t0 = performance.now();
  input.value = text;
  input.dispatchEvent(new Event('input', { bubbles: true }));
  while (out.dataset.query !== text) await new Promise((r) => setTimeout(r, 1));
  return [performance.now() - t0, out.textContent];
}"""


def live_count(browser: Browser, url: str, tokens: dict[str, str], repeats: int) -> None:
    worst = 0.0
    for user in ("admin", "reader", "wide"):
        page = logged_in(browser, tokens[user])
        page.goto(f"{url}/#/query")
        page.locator("output.count[data-query]").wait_for()
        with httpx.Client(base_url=url, headers={"Authorization": f"Bearer {tokens[user]}"}, trust_env=False) as api:
            for text in COUNT_QUERIES:
                shown, direct = [], []
                for i in range(repeats):
                    variant = text if i % 2 == 0 else f"{text} "  # a new text each time: no cached answer
                    ms, value = page.evaluate(TYPE_AND_WAIT, variant)
                    shown.append(ms)
                    t0 = time.perf_counter()
                    expected = api.get("/v1/count", params={"query": variant}).json()["count"]
                    direct.append((time.perf_counter() - t0) * 1000)
                    assert value == str(expected), (value, expected)
                worst = max(worst, statistics.median(shown))
                print(
                    f"   {user:6} {text:34} shown {statistics.median(shown):7.1f} ms"
                    f"  (GET /v1/count {statistics.median(direct):6.1f} ms + debounce {DEBOUNCE_MS} ms)"
                )
        page.context.close()
    verdict = "met" if worst <= 150 else "NOT met"
    print(f"   target: count within 150 ms of typing: {verdict} (worst median {worst:.0f} ms)")


#: NiiVue on its own in a page of the same origin: WebGL set-up, then the volume's load.
NIIVUE_ALONE = """async ([path, key]) => {
  const { Niivue } = await import('/ui/vendor/niivue.js');
  const box = document.createElement('div');
  box.style.width = '1200px';
  box.style.height = '560px';
  const canvas = document.createElement('canvas');
  box.append(canvas);
  document.body.prepend(box);
  const headers = { Authorization: 'Bearer ' + sessionStorage.getItem(key) };
  let t0 = performance.now();
  const nv = new Niivue({ backColor: [0, 0, 0, 1], isResizeCanvas: true, logLevel: 'error' });
  await nv.attachToCanvas(canvas);
  const attach = performance.now() - t0;
  t0 = performance.now();
  await nv.loadVolumes([{ url: '/v1/files/big/' + path, name: 'x.nii.gz', headers, colormap: 'gray' }]);
  const loaded = performance.now() - t0;
  t0 = performance.now();
  nv.drawScene();
  await new Promise((r) => requestAnimationFrame(() => requestAnimationFrame(r)));  // the frame is on screen
  return [attach, loaded, performance.now() - t0];
}"""


def scan_view(browser: Browser, url: str, token: str, size: int, repeats: int) -> None:
    drawn, fetched, direct, attach, loaded, framed = [], [], [], [], [], []
    for _ in range(repeats):
        page = logged_in(browser, token)
        page.goto(f"{url}/#/scan/big/{BIG}")
        page.locator(".viewer[data-state=ready]").wait_for(timeout=60_000)
        drawn.append(page.evaluate("performance.now()"))
        fetched.append(
            page.evaluate(
                """async ([path, key]) => {
                  const t0 = performance.now();
                  const headers = { Authorization: 'Bearer ' + sessionStorage.getItem(key) };
                  const r = await fetch('/v1/files/big/' + path, { headers });
                  await r.arrayBuffer();
                  return performance.now() - t0;
                }""",
                [BIG, TOKEN_KEY],
            )
        )
        page.context.close()
        page = logged_in(browser, token)
        page.goto(f"{url}/#/datasets")
        page.locator("main table tbody tr").first.wait_for()
        setup, load_ms, frame_ms = page.evaluate(NIIVUE_ALONE, [BIG, TOKEN_KEY])
        attach.append(setup)
        loaded.append(load_ms)
        framed.append(frame_ms)
        page.context.close()
        t0 = time.perf_counter()
        httpx.get(f"{url}/v1/files/big/{BIG}", headers={"Authorization": f"Bearer {token}"}, trust_env=False)
        direct.append((time.perf_counter() - t0) * 1000)
    print(f"   {size / 1e6:.1f} MB .nii.gz drawn by NiiVue (from navigation) {quantiles(drawn)}")
    print(f"   baseline: the same bytes fetched in the page          {quantiles(fetched)}")
    print(f"   baseline: the same bytes over httpx                   {quantiles(direct)}")
    print(f"   NiiVue alone in a page: WebGL set-up (attachToCanvas) {quantiles(attach)}")
    print(f"   NiiVue alone in a page: fetch and decode the volume   {quantiles(loaded)}")
    print(f"   NiiVue alone in a page: its first frame on screen     {quantiles(framed)}")
    print(f"   target: < 2000 ms: {'met' if statistics.median(drawn) < 2000 else 'NOT met'}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="100 datasets, fewer repeats (checks the script)")
    parser.add_argument("--datasets", type=int, default=1000)
    args = parser.parse_args()
    datasets, repeats = (100, 3) if args.quick else (args.datasets, 10)
    work = Path(tempfile.mkdtemp(prefix="web-bench-"))
    servers = []
    try:
        print(f"machine: {load()}")
        demo_tokens, size = demo_store(work / "demo", work)
        stack, _, big_tokens = build_store(work / "big-index" / "home", datasets)
        stack.close()
        demo = start_server(work / "demo", work / "demo.log")
        index = start_server(work / "big-index" / "home", work / "index.log")
        servers = [demo[0], index[0]]
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
            print(f"\n1. First meaningful paint, demo store ({repeats} loads)")
            first_paint(browser, demo[1], demo_tokens["admin"], repeats)
            print(f"\n2. Live count while typing, {datasets * 100:,} records in {datasets} datasets")
            print("   (reader may read 10 % of the datasets, wide 90 %; median of", repeats, "texts each)")
            live_count(browser, index[1], big_tokens, repeats)
            print(f"\n3. Scan view ({repeats} loads)")
            scan_view(browser, demo[1], demo_tokens["admin"], size, repeats)
            browser.close()
        print(f"\n[{load()}]")
    finally:
        for proc in servers:
            proc.terminate()
            proc.wait(timeout=30)
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
