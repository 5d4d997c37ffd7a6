"""AppTest of the Cells page: default view, a widget change, an injected lasso selection, and uploads."""

from __future__ import annotations

import json
import re

import numpy as np
import pandas as pd
import scipy.sparse as sp

from tests.conftest import run_page
from tests.unit.cells_toy import h5ad_bytes


def _h5ad(x, obs) -> bytes:
    import anndata as ad

    return h5ad_bytes(ad.AnnData(X=x, obs=obs, var=pd.DataFrame(index=[f"g{j}" for j in range(x.shape[1])])))


def test_cells_page_default_and_interactions():
    at = run_page("pages/cells.py")
    assert not at.exception, [e.value for e in at.exception]
    assert not at.error, [e.value for e in at.error]
    assert at.title[0].value.startswith("Cells")
    # the map: one selectable WebGL scatter with row ids in customdata
    spec = json.loads(at.get("plotly_chart")[0].proto.spec)
    assert any("customdata" in tr for tr in spec["data"])
    assert sum(len(tr["x"]) for tr in spec["data"] if isinstance(tr.get("x"), list)) in (0, 1200) or spec["data"]
    labels = [m.label for m in at.metric]
    assert "W2, pooled (CFGen)" in labels and "MMD² unbiased (CFGen)" in labels
    w2 = next(m for m in at.metric if m.label == "W2, pooled (CFGen)")
    assert "NB baseline" in (w2.delta or "")
    spread = next(c.value for c in at.caption if "Mean spread ratio: CFGen" in c.value)
    ratios = [float(v) for v in re.findall(r"(?:CFGen|NB baseline|real training cells) (\d+\.\d+)", spread)]
    assert len(ratios) == 3 and all(0.1 < r < 3 for r in ratios), spread
    assert any(b.label.startswith("Download generated cells") for b in at.get("download_button"))
    # the shipped card's held-out table (pooled W2 with its interval) and the per-type table with small types flagged
    from backend.cells import load_model

    m = load_model("pbmc68k").card["metrics"]
    frames = [d.value for d in at.dataframe]
    held = next(f for f in frames if "W2, all cells pooled" in f.columns)
    assert held.iloc[0]["W2, all cells pooled"] == f"{m['w2_pooled']:.3f} [{m['w2_pooled_lo']:.3f}, {m['w2_pooled_hi']:.3f}]"
    per = next(f for f in frames if "cfgen_mmd2_u" in f.columns)
    assert set(per.loc[per["n_real"] < 20, "too_small"]) == {"too small to rank"}

    # choose one cell type and two attributes (compositional guidance on an unseen pair)
    at.selectbox(key="cells.v1").set_value("CD14+ Monocyte")
    at.selectbox(key="cells.v2").set_value("G2M")
    at.number_input(key="cells.n").set_value(200)
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    assert at.query_params["v1"] == ["CD14+ Monocyte"] or at.query_params["v1"] == "CD14+ Monocyte"

    # a selection injected through the page's own state key gives composition + top genes
    at.session_state["cells_selected_ids"] = list(range(0, 120)) + list(range(700, 760))
    at.run()
    assert not at.exception
    assert any("Selection: 180 cells" in m.value for m in at.markdown)
    assert len(at.dataframe) >= 3


def test_cells_page_upload_and_errors():
    at = run_page("pages/cells.py")
    at.radio(key="cells.source").set_value("upload").run()
    assert not at.exception
    assert any("Upload an .h5ad" in i.value for i in at.info)
    rng = np.random.default_rng(0)
    obs = pd.DataFrame({"cell_type": rng.choice(["a", "b"], 120)}, index=[f"c{i}" for i in range(120)])
    bad = _h5ad(sp.csr_matrix(rng.random((120, 15)).astype(np.float32)), obs)
    at.get("file_uploader")[0].set_value(("bad.h5ad", bad, "application/octet-stream"))
    at.run()
    assert not at.exception
    assert any("non-integer" in e.value for e in at.error)

    good = _h5ad(sp.csr_matrix(rng.poisson(2.0, (120, 15)).astype(np.float32)), obs)
    at.get("file_uploader")[0].set_value(("good.h5ad", good, "application/octet-stream"))
    at.run()
    assert not at.exception and not at.error
    at.slider(key="cells.budget").set_value(10)
    at.button(key="cells.train").click()
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    assert any("Trained in" in s.value for s in at.success)
    assert len(at.get("plotly_chart")) >= 1
