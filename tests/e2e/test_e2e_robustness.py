"""Browser test of the Robustness page: the scatter with its fit, then one more member trained onto it."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from tests.conftest import open_page, screenshot, wait_idle


@pytest.mark.e2e
def test_robustness_page_in_browser(server, page):
    open_page(page, server, "robustness", "?ood=blur/3")
    expect(page.get_by_test_id("stPlotlyChart").first).to_be_visible(timeout=120_000)
    expect(page.get_by_text("members in the fit")).to_be_visible()
    expect(page.get_by_text("Which ID-side metric best predicts OOD accuracy?")).to_be_visible()
    # one cheap member: logistic, 10 shots per class, 1 epoch
    page.get_by_role("slider").first.focus()
    page.keyboard.press("Home")
    page.get_by_role("button", name="Train and add to the scatter").click()
    wait_idle(page)
    expect(page.get_by_text("(the star)")).to_be_visible(timeout=60_000)
    assert "blur/3" in page.url.replace("%2F", "/")
    screenshot(page, "robustness")
    assert page.get_by_test_id("stException").count() == 0
