"""Browser test of the Causal page: the default view renders graphs, images, metrics; a widget drives a rerun."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from tests.conftest import open_page, screenshot, wait_idle


@pytest.mark.e2e
def test_causal_page_in_browser(server, page):
    open_page(page, server, "causal")
    expect(page.get_by_text("1 · The causal graph")).to_be_visible(timeout=60_000)
    expect(page.get_by_test_id("stGraphVizChart").first).to_be_visible(timeout=60_000)
    expect(page.get_by_test_id("stImage").first).to_be_visible(timeout=60_000)
    expect(page.get_by_text("4 · Results")).to_be_visible(timeout=120_000)
    expect(page.get_by_test_id("stMetric").first).to_be_visible()
    assert page.get_by_test_id("stGraphVizChart").count() >= 3
    # switch the learner to the oracle: the results rerun without errors
    page.get_by_test_id("stRadio").filter(has_text="Learner").get_by_text("oracle (true latents)").click()
    wait_idle(page)
    expect(page.get_by_test_id("stMetric").first).to_be_visible(timeout=60_000)
    assert "learner=oracle" in page.url
    screenshot(page, "causal")
    assert page.get_by_test_id("stException").count() == 0
