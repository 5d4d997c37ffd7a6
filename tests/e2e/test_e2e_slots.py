"""Browser test of the Slots page: gallery, detail view, probe plot, and an upload through the file chooser."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from tests.conftest import ARTIFACTS, open_page, screenshot, wait_idle


@pytest.mark.e2e
def test_slots_page_in_chromium(server, page):
    open_page(page, server, "slots", "?n=8&seed=3")
    expect(page.get_by_text("Slots").first).to_be_visible()
    expect(page.get_by_test_id("stImage").first).to_be_visible(timeout=60_000)
    assert page.get_by_test_id("stImage").count() >= 8
    expect(page.get_by_text("FG-ARI, these 8 scenes")).to_be_visible()
    screenshot(page, "slots")

    page.get_by_role("tab", name="Downstream probe").click()
    expect(page.get_by_test_id("stPlotlyChart").first).to_be_visible(timeout=30_000)
    screenshot(page, "slots-probe")

    page.get_by_role("tab", name="Your image").click()
    from backend.core.media import png_bytes, upscale
    from backend.slots import make_scenes

    ARTIFACTS.mkdir(exist_ok=True)
    path = ARTIFACTS / "slots-upload.png"
    path.write_bytes(png_bytes(upscale(make_scenes(1, seed=9)[0][0], 3)))
    with page.expect_file_chooser() as fc:
        page.get_by_test_id("stFileUploaderDropzone").click()
    fc.value.set_files(str(path))
    wait_idle(page)
    expect(page.get_by_text("your image (96×96)")).to_be_visible(timeout=60_000)
    assert page.get_by_test_id("stException").count() == 0
    assert page.get_by_test_id("stAlertContentError").count() == 0
    screenshot(page, "slots-upload")
