"""Browser test of the VQA page: answers per representation, a composed question, the results charts."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from backend.core.registry import CHECKPOINT_DIR
from tests.conftest import open_page, screenshot, wait_idle


@pytest.mark.e2e
@pytest.mark.skipif(not (CHECKPOINT_DIR / "vqa.pt").exists(), reason="no shipped vqa checkpoint")
def test_vqa_page_in_chromium(server, page):
    open_page(page, server, "vqa", "?scene=2")
    expect(page.get_by_text("True answer").first).to_be_visible(timeout=60_000)
    expect(page.get_by_test_id("stPlotlyChart").first).to_be_visible(timeout=60_000)
    box = page.get_by_test_id("stTextInputField").first
    box.fill("how many objects are there")
    box.press("Enter")
    wait_idle(page)
    expect(page.get_by_text("how many objects are there?").first).to_be_visible(timeout=60_000)
    assert page.get_by_test_id("stException").count() == 0
    screenshot(page, "vqa")
