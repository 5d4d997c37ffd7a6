"""Browser test of the Disentanglement page: default scores and charts, then a CSV upload through the chooser."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from backend.disentangle import to_csv_bytes, toy_codes
from tests.conftest import open_page, screenshot, wait_idle


@pytest.mark.e2e
def test_disentangle_page_in_browser(server, page, tmp_path):
    open_page(page, server, "disentangle")
    expect(page.get_by_test_id("stPlotlyChart")).to_have_count(3, timeout=120_000)
    expect(page.get_by_test_id("stMetric")).to_have_count(5)
    expect(page.get_by_text("Per factor: Toy: identity")).to_be_visible()
    expect(page.get_by_test_id("stDataFrame").first).to_be_visible()
    expect(page.get_by_role("button", name="Download all scores (CSV)")).to_be_visible()

    # upload a CSV of codes + factors: it joins the comparison and becomes the inspected representation
    c, z, names = toy_codes("rotation", n=300, k=3, seed=4)
    path = tmp_path / "mine.csv"
    path.write_bytes(to_csv_bytes(c, z, names))
    page.get_by_text("Upload your own codes and factors").click()
    with page.expect_file_chooser() as chooser:
        page.get_by_test_id("stFileUploaderDropzone").click()
    chooser.value.set_files(str(path))
    wait_idle(page)
    expect(page.get_by_text("Uploaded: mine.csv").first).to_be_visible(timeout=120_000)
    expect(page.get_by_test_id("stPlotlyChart")).to_have_count(3, timeout=120_000)
    assert "upload" in page.url
    screenshot(page, "disentangle")
    assert page.get_by_test_id("stException").count() == 0
