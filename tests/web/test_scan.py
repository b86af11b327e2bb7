"""The scan view: NiiVue draws a T1w image with its brain-mask derivative as a red overlay
(the overlay's pixels are counted in a screenshot of the canvas at opacity 1, 0 and with
no overlay), the slice layout changes, and beside it the sidecar metadata names the file
each key was inherited from; a derivative shows its provenance."""

from __future__ import annotations

import base64

from playwright.sync_api import Page, expect

from tests.web.conftest import Browse, screenshot

T1W = "site-a/sub-001/ses-1/anat/sub-001_ses-1_T1w.nii.gz"
MASK = "site-a/derivatives/brain-mask/sub-001/ses-1/anat/sub-001_ses-1_desc-brain_mask.nii.gz"


#: Counts the pixels of a PNG (base64) where red clearly dominates, decoding it in the page.
COUNT_RED = """async (png) => {
  const bytes = Uint8Array.from(atob(png), (c) => c.charCodeAt(0));
  const bitmap = await createImageBitmap(new Blob([bytes], { type: 'image/png' }));
  const canvas = new OffscreenCanvas(bitmap.width, bitmap.height);
  const context = canvas.getContext('2d');
  context.drawImage(bitmap, 0, 0);
  const data = context.getImageData(0, 0, bitmap.width, bitmap.height).data;
  let red = 0;
  for (let i = 0; i < data.length; i += 4) {
    const [r, g, b] = [data[i], data[i + 1], data[i + 2]];
    if (r > 120 && r > 2 * g + 20 && r > 2 * b + 20) red += 1;
  }
  return red;
}"""


def red_pixels(page: Page) -> int:
    """Pixels of the viewer's canvas, in a Playwright screenshot, where red clearly
    dominates (the mask overlay); the T1w image itself is grey."""
    page.evaluate("() => new Promise((done) => requestAnimationFrame(() => requestAnimationFrame(done)))")
    png = page.locator("canvas.niivue").screenshot()
    return int(page.evaluate(COUNT_RED, base64.b64encode(png).decode()))


#: Counts the pixels of a PNG (base64) that are bright grey: the T1w image itself.
COUNT_GREY = COUNT_RED.replace(
    "if (r > 120 && r > 2 * g + 20 && r > 2 * b + 20) red += 1;",
    "if (r > 60 && Math.abs(r - g) < 8 && Math.abs(r - b) < 8) red += 1;",
)


def test_the_scan_is_downloaded_once_and_drawn(browse: Browse) -> None:
    """The page fetches the image's bytes while NiiVue starts and hands them over: one
    download of the scan, one of its mask, and the scan's grey pixels on the canvas."""
    page = browse.login("alice")
    files: list[str] = []
    page.on("request", lambda request: files.append(request.url) if "/v1/files/" in request.url else None)
    page.goto(f"{browse.site.url}/#/scan/{T1W}")
    expect(page.locator(".viewer")).to_have_attribute("data-state", "ready", timeout=30_000)
    assert sorted(url.split("/v1/files/")[1] for url in files) == sorted([MASK, T1W])
    page.get_by_label("Overlay", exact=True).select_option(label="No overlay")
    expect(page.locator(".viewer")).to_have_attribute("data-state", "ready")
    page.evaluate("() => new Promise((done) => requestAnimationFrame(() => requestAnimationFrame(done)))")
    png = base64.b64encode(page.locator("canvas.niivue").screenshot()).decode()
    assert int(page.evaluate(COUNT_GREY, png)) > 2000


def test_the_mask_overlay_is_drawn_over_the_scan(browse: Browse) -> None:
    page = browse.login("alice")
    page.goto(f"{browse.site.url}/#/scan/{T1W}")
    expect(page.locator(".viewer")).to_have_attribute("data-state", "ready", timeout=30_000)
    overlay = page.get_by_label("Overlay", exact=True)
    expect(overlay.locator("option:checked")).to_have_text("brain-mask: mask")
    opacity = page.get_by_label("Overlay opacity")
    opacity.focus()
    page.keyboard.press("End")  # the keyboard moves the slider: opacity 1
    expect(page.locator("label[for=overlay-opacity] output")).to_have_text("1.00")
    shown = red_pixels(page)
    screenshot(page, "scan")
    page.keyboard.press("Home")  # opacity 0
    expect(page.locator("label[for=overlay-opacity] output")).to_have_text("0.00")
    hidden = red_pixels(page)
    assert shown > 2000 and hidden < 50, (shown, hidden)

    overlay.select_option(label="No overlay")
    expect(page.locator(".viewer")).to_have_attribute("data-state", "ready")
    assert red_pixels(page) < 50
    overlay.select_option(label="brain-mask: mask")
    expect(page.locator(".viewer")).to_have_attribute("data-state", "ready")
    page.get_by_label("Overlay opacity").focus()
    page.keyboard.press("End")
    multiplanar = red_pixels(page)
    page.get_by_label("Slice layout").select_option("axial")  # one large slice: more mask pixels
    assert red_pixels(page) > multiplanar > 2000

    # The sidecar metadata and where each key comes from (the inheritance principle).
    metadata = page.get_by_role("region", name="Sidecar metadata")
    expect(metadata.get_by_role("row", name="RepetitionTime")).to_contain_text("T1w.json")
    expect(metadata.get_by_role("row", name="AcquisitionTime")).to_contain_text("sub-001_ses-1_T1w.json")
    expect(page.get_by_role("region", name="Header facts")).to_contain_text("99 × 117 × 95")


def test_a_derivative_shows_its_provenance(browse: Browse) -> None:
    page = browse.login("alice")
    page.goto(f"{browse.site.url}/#/scan/{MASK}")
    provenance = page.get_by_role("region", name="Provenance")
    expect(provenance).to_contain_text("brain-mask 1.0.0")
    expect(provenance).to_contain_text("sha256:")
    expect(provenance).to_contain_text('"erode_mm":4')
    provenance.get_by_role("link", name="site-a/sub-001/ses-1/anat/sub-001_ses-1_T1w.nii.gz").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("sub-001_ses-1_T1w.nii.gz")
