"""Browser test of the DiffEnc page: encoder panels, the comparison table and charts, samples, then OOD scoring
(with the shipped checkpoints; without them, the page's actionable error)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from playwright.sync_api import expect

from backend.core.registry import CHECKPOINT_DIR
from tests.conftest import open_page, screenshot, wait_idle

_DIR = Path(os.environ.get("DIFFENC_CHECKPOINTS") or CHECKPOINT_DIR)  # the server reads the same variable
SHIPPED = all((_DIR / f"{n}.pt").exists() for n in ("diffenc", "diffenc-vdm", "diffenc-vdm-matched"))


@pytest.mark.e2e
def test_diffenc_page_in_browser(server, page):
    open_page(page, server, "diffenc")
    if not SHIPPED:
        expect(page.get_by_text("python -m backend.train diffenc-all").first).to_be_visible(timeout=120_000)
        return
    expect(page.get_by_text("x_φ(x, t) (encoded)")).to_be_visible(timeout=120_000)
    expect(page.get_by_test_id("stPlotlyChart")).to_have_count(2, timeout=120_000)
    expect(page.get_by_text("DiffEnc: 16 samples")).to_be_visible(timeout=120_000)
    page.get_by_role("button", name="Score out-of-distribution digits").click()
    wait_idle(page)
    expect(page.get_by_text("Rows: MNIST test, scikit-learn digits, font digits")).to_be_visible(timeout=240_000)
    screenshot(page, "diffenc")
    assert page.get_by_test_id("stException").count() == 0
