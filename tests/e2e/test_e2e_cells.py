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
    expect(page.get_by_text("W2 (CFGen)").first).to_be_attached()
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
