"""In the browser, one file of the bad-input corpus per page: a visible error naming the file (not folded into a
collapsed box), no exception element, and the page still there."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from tests.conftest import ROOT, open_page, screenshot, wait_idle

BAD = ROOT / "tests" / "data" / "bad"

CASES = [  # page path, query, a tab or expander to open first (or None), corpus file, fragment of the message
    ("slots", "", "Your image", "truncated.png", "could not be read as an image"),
    ("apt", "?source=Upload", None, "text.png", "could not be read as an image"),
    ("video", "?source=upload&start=10", None, "short.gif", "ends before the chosen first frame"),
    ("cells", "?source=upload", None, "nan.h5ad", "NaN or infinite"),
    ("disentangle", "?sources=%5B%22toy%3Aidentity%22%5D", "Upload your own codes and factors", "header_only.csv",
     "no data rows"),
]


@pytest.mark.e2e
@pytest.mark.parametrize("path,query,expand,name,fragment", CASES, ids=[c[0] for c in CASES])
def test_bad_file_gives_a_visible_named_error(server, page, path, query, expand, name, fragment):
    open_page(page, server, path, query)
    if expand:
        tab = page.get_by_role("tab", name=expand)
        (tab if tab.count() else page.get_by_text(expand)).click()
    with page.expect_file_chooser() as chooser:
        page.get_by_test_id("stFileUploaderDropzone").first.click()
    chooser.value.set_files(str(BAD / name))
    wait_idle(page)
    error = page.get_by_test_id("stAlertContentError").filter(has_text=name)
    expect(error.first).to_be_visible(timeout=120_000)
    expect(error.first).to_contain_text(fragment)
    assert "0x" not in error.first.inner_text()
    assert page.get_by_test_id("stException").count() == 0
    expect(page.locator('[data-testid="stMain"] h1').first).to_be_visible()
    screenshot(page, f"bad-input-{path}")
