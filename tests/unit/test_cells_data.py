"""Cells data: count recovery of the bundled cells, the stratified split, upload validation."""

from __future__ import annotations

import io

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

from backend.cells import read_h5ad_counts
from backend.cells.data import recover_counts
from tests.unit.cells_toy import h5ad_bytes, model, real, toy  # noqa: F401 (fixtures)


def test_count_recovery_is_exact():
    import importlib.util
    from pathlib import Path

    import anndata as ad

    path = Path(importlib.util.find_spec("scanpy").submodule_search_locations[0]) / "datasets" / \
        "10x_pbmc68k_reduced.h5ad"
    src = ad.read_h5ad(path)
    n_counts = src.obs["n_counts"].to_numpy().astype(np.float64)
    counts, residual = recover_counts(src.raw.X, n_counts)
    assert residual < 0.1, "every unrounded value must lie within 0.1 of an integer"
    assert counts.data.min() >= 1 and counts.data.max() <= 259
    assert np.all(counts.data == np.rint(counts.data))
    # recomputing the stored log values reproduces all but a handful (float32 rounding boundaries)
    rows = np.repeat(np.arange(counts.shape[0]), np.diff(counts.indptr))
    again = np.round(np.log1p(counts.data.astype(np.float64) / n_counts[rows] * 1e4), 3)
    stored = sp.csr_matrix(src.raw.X).data.astype(np.float64)
    assert (np.abs(again - stored) > 1.5e-3).sum() <= 10


def test_dataset_shape_and_labels(real):
    assert real.shape == (700, 765) and sp.issparse(real.X)
    assert np.all(real.X.data > 0) and np.allclose(real.X.data, np.rint(real.X.data))
    vc = real.obs["cell_type"].value_counts()
    assert len(vc) == 10 and vc["Dendritic"] == 240 and vc["CD4+/CD45RA+/CD25- Naive T"] == 8
    assert set(real.obs["phase"].astype(str)) == {"G1", "S", "G2M"}


def test_split_is_stratified_and_disjoint(real):
    from backend.cells import split_indices

    tr, te = split_indices(real.obs["cell_type"], 0.25, seed=0)
    assert len(set(tr) & set(te)) == 0 and len(tr) + len(te) == real.n_obs
    for t in real.obs["cell_type"].cat.categories:
        assert (real.obs["cell_type"].iloc[te] == t).sum() >= 1


def test_good_upload_and_layer_counts():
    cells = toy(60, 12)
    cells.layers["counts"] = cells.X.copy()
    cells.X = sp.csr_matrix(np.log1p(cells.X.toarray()))
    adata, cols = read_h5ad_counts(h5ad_bytes(cells))
    assert cols == ["cell_type"] and adata.n_obs == 60


@pytest.mark.parametrize("case, message", [
    ("float", "non-integer"), ("negative", "negative"), ("nan", "NaN"), ("nocols", "No obs column"),
    ("nocells", "no cells"), ("text", "not an .h5ad"),
])
def test_bad_uploads(case, message):
    import anndata as ad

    cells = toy(30, 8)
    x = cells.X.toarray()
    if case == "float":
        cells.X = sp.csr_matrix(np.log1p(x))
    elif case == "negative":
        x[0, 0] = -2
        cells.X = x
    elif case == "nan":
        x[1, 1] = np.nan
        cells.X = x
    elif case == "nocols":
        cells.obs = pd.DataFrame({"id": [f"c{i}" for i in range(30)]}, index=cells.obs_names)
    elif case == "nocells":
        cells = ad.AnnData(X=np.zeros((0, 8), np.float32))
    raw = b"cell,gene\n1,2\n" if case == "text" else h5ad_bytes(cells)
    with pytest.raises(ValueError, match=message):
        read_h5ad_counts(io.BytesIO(raw))


def test_prepare_rejects_bad_columns():
    from backend.cells.data import prepare_counts

    cells = toy(30, 8)
    cells.obs["id"] = [f"x{i}" for i in range(30)]
    with pytest.raises(ValueError, match="not in the dataset"):
        prepare_counts(cells, ["tissue"])
    cells.obs["one"] = "same"
    with pytest.raises(ValueError, match="cannot be an attribute"):
        prepare_counts(cells, ["one"])
