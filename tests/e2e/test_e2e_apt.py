"""Browser tests of the APT page: default view, an upload through the file chooser, a drawing."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from tests.conftest import ARTIFACTS, open_page, screenshot, wait_idle

pytestmark = pytest.mark.e2e


def test_apt_page_default_and_upload(server, page):
    from playwright.sync_api import expect

    open_page(page, server, "apt", "?steps=40")
    expect(page.get_by_text("APT: adversarial pivotal tuning")).to_be_visible()
    expect(page.get_by_text("fooled", exact=False).first).to_be_visible(timeout=120_000)
    assert page.get_by_test_id("stImage").count() >= 6
    expect(page.get_by_text("the judge reads", exact=False).first).to_be_visible()
    screenshot(page, "apt")
    # upload a dark "7" on white through the file chooser
    page.get_by_text("Upload", exact=True).click()
    wait_idle(page)
    img = np.full((140, 120, 3), 255, np.uint8)
    img[20:30, 20:100] = 0
    for r in range(30, 120):
        c = 100 - (r - 30) // 2
        img[r, c - 6: c + 6] = 0
    ARTIFACTS.mkdir(exist_ok=True)
    path = ARTIFACTS / "apt-upload-7.png"
    Image.fromarray(img).save(path)
    with page.expect_file_chooser() as fc:
        page.get_by_test_id("stFileUploaderDropzone").click()
    fc.value.set_files(str(path))
    wait_idle(page)
    expect(page.get_by_text("Its class (for the generator)")).to_be_visible(timeout=120_000)
    expect(page.get_by_text("Press Run attack to attack this image", exact=False)).to_be_visible()
    assert page.get_by_text("APT vs cnn", exact=False).count() == 0  # an uploaded image is attacked only on request
    page.get_by_role("button", name="Run attack").click()
    wait_idle(page)
    expect(page.get_by_text("APT vs cnn", exact=False)).to_be_visible(timeout=120_000)
    assert page.get_by_test_id("stImage").count() >= 6
    assert page.get_by_test_id("stException").count() == 0
    screenshot(page, "apt-upload")


def test_apt_page_draw_on_canvas(server, page):
    from playwright.sync_api import expect

    open_page(page, server, "apt", "?source=Draw&steps=40")
    canvas = page.locator(".st-key-apt_canvas canvas").last
    expect(canvas).to_be_visible(timeout=60_000)
    canvas.hover()  # fabric.js only starts a stroke after the pointer has entered the canvas
    page.wait_for_timeout(300)
    box = canvas.bounding_box()
    x0, y0 = box["x"] + box["width"] * 0.5, box["y"] + box["height"] * 0.15
    page.mouse.move(x0, y0)
    page.mouse.down()
    for k in range(1, 15):
        page.mouse.move(x0, y0 + box["height"] * 0.05 * k, steps=4)
    page.mouse.up()
    wait_idle(page)
    expect(page.get_by_text("Its class (for the generator)")).to_be_visible(timeout=120_000)
    assert page.get_by_test_id("stException").count() == 0
    screenshot(page, "apt-draw")
