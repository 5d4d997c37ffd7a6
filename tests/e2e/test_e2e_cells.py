"""Browser test of the Cells page: the map renders (WebGL), a lasso selection shows composition, upload errors."""

from __future__ import annotations

import os
import tempfile

import numpy as np
import pandas as pd
import pytest

from tests.conftest import open_page, screenshot, wait_idle


@pytest.mark.e2e
def test_cells_page_in_browser(server, page):
    from playwright.sync_api import expect

    open_page(page, server, "cells")
    expect(page.get_by_text("Cells: CFGen").first).to_be_visible(timeout=120_000)
    chart = page.get_by_test_id("stPlotlyChart").first
    expect(chart).to_be_visible(timeout=120_000)
    expect(page.get_by_text("W2, pooled (CFGen)").first).to_be_attached()
    assert page.evaluate("!!document.createElement('canvas').getContext('webgl')"), "WebGL unavailable"

    # lasso around the middle of the map (dragmode is lasso)
    chart.scroll_into_view_if_needed()
    box = chart.locator(".nsewdrag").first.bounding_box()
    cx, cy, w, h = box["x"] + box["width"] / 2, box["y"] + box["height"] / 2, box["width"], box["height"]
    page.mouse.move(cx - 0.3 * w, cy - 0.3 * h)
    page.mouse.down()
    for fx, fy in ((0.3, -0.3), (0.3, 0.3), (-0.3, 0.3), (-0.3, -0.28)):
        page.mouse.move(cx + fx * w, cy + fy * h, steps=5)
    page.mouse.up()
    wait_idle(page)
    expect(page.get_by_text("Selection:").first).to_be_visible(timeout=60_000)
    screenshot(page, "cells")
    assert page.get_by_test_id("stException").count() == 0


@pytest.mark.e2e
def test_cells_upload_in_browser(server, page):
    import anndata as ad
    import scipy.sparse as sp
    from playwright.sync_api import expect

    open_page(page, server, "cells", query="?source=upload")
    rng = np.random.default_rng(0)
    a = ad.AnnData(X=sp.csr_matrix(rng.random((50, 10)).astype(np.float32)),
                   obs=pd.DataFrame({"cell_type": rng.choice(["a", "b"], 50)}, index=[f"c{i}" for i in range(50)]))
    path = os.path.join(tempfile.mkdtemp(), "scaled.h5ad")
    a.write_h5ad(path)
    with page.expect_file_chooser() as fc:
        page.get_by_test_id("stFileUploaderDropzone").first.click()
    fc.value.set_files(path)
    wait_idle(page)
    expect(page.get_by_text("non-integer").first).to_be_visible(timeout=60_000)
    assert page.get_by_test_id("stException").count() == 0
    screenshot(page, "cells-upload")


def _generated_traces(page) -> dict:
    """name -> number of points of the map's generated-cell traces (plotly's own data on the chart element)."""
    return page.evaluate("""() => {
        const el = document.querySelector('[data-testid=stPlotlyChart] .js-plotly-plot');
        const out = {};
        for (const tr of (el && el._fullData) || []) {  // plotly's resolved traces (x may arrive binary-packed)
            if ((tr.name || '').endsWith('generated')) out[tr.name] = tr._length;
        }
        return out;
    }""")


@pytest.mark.e2e
def test_two_sessions_placing_cells_at_once_see_only_their_own(server, browser):
    from urllib.parse import quote

    from playwright.sync_api import expect

    wanted = {"CD14+ Monocyte": 70, "CD19+ B": 45}
    pages = {}
    for cell_type, n in wanted.items():  # two browser contexts = two independent sessions
        ctx = browser.new_context(viewport={"width": 1400, "height": 1000})
        pages[cell_type] = ctx.new_page()
        pages[cell_type].goto(f"{server}/cells?v1={quote(cell_type)}&n={n}&seed=7&color=cell_type", timeout=180_000)
    try:
        for page in pages.values():  # both sessions generate and place at the same time
            wait_idle(page, 180_000)
            expect(page.get_by_test_id("stPlotlyChart").first).to_be_visible(timeout=180_000)
            page.wait_for_function("() => { const el = document.querySelector("
                                   "'[data-testid=stPlotlyChart] .js-plotly-plot'); return el && el._fullData; }",
                                   timeout=120_000)
        for cell_type, page in pages.items():
            traces = _generated_traces(page)
            assert traces == {f"{cell_type}, generated": wanted[cell_type]}, (cell_type, traces)
            assert page.get_by_test_id("stException").count() == 0
    finally:
        for page in pages.values():
            page.context.close()
