"""Browser test of the Video infill page: strips, a playable WebM, the chart, a generation and an upload."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

from tests.conftest import ARTIFACTS, open_page, screenshot, wait_idle


@pytest.mark.e2e
def test_video_page_in_chromium(server, page):
    open_page(page, server, "video")
    expect(page.get_by_text("Video infill").first).to_be_visible()
    expect(page.get_by_test_id("stImage").first).to_be_visible(timeout=60_000)
    video = page.locator("video").first
    expect(video).to_be_visible(timeout=60_000)
    # the WebM must actually decode in Chromium (not just be present)
    page.wait_for_function("document.querySelector('video') && document.querySelector('video').readyState >= 2",
                           timeout=30_000)
    assert page.evaluate("document.querySelector('video').videoWidth") > 0
    expect(page.get_by_test_id("stPlotlyChart").first).to_be_visible()
    page.get_by_role("button", name=re.compile(r"^Generate \(")).click()
    wait_idle(page)
    assert page.get_by_test_id("stException").count() == 0
    screenshot(page, "video")

    # upload through the file chooser
    page.get_by_text("Upload a video").click()
    wait_idle(page)
    from backend.core.media import gif_bytes
    from backend.video import make_videos

    ARTIFACTS.mkdir(exist_ok=True)
    path = ARTIFACTS / "video-upload.gif"
    path.write_bytes(gif_bytes(make_videos(1, seed=3)[0], scale=2))
    with page.expect_file_chooser() as fc:
        page.get_by_test_id("stFileUploaderDropzone").click()
    fc.value.set_files(str(path))
    wait_idle(page)
    expect(page.get_by_text("Given to the model").first).to_be_visible(timeout=60_000)
    assert page.get_by_test_id("stException").count() == 0
    assert page.get_by_test_id("stAlertContentError").count() == 0
