"""Small synthetic count data and the shipped data/model fixtures shared by the Cells tests."""

from __future__ import annotations

import os
import tempfile

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

from backend.cells import load_dataset, load_model


def h5ad_bytes(adata) -> bytes:
    fd, path = tempfile.mkstemp(suffix=".h5ad")
    os.close(fd)
    try:
        adata.write_h5ad(path)
        return open(path, "rb").read()
    finally:
        os.unlink(path)


def toy(n=300, g=40, seed=0, types=("a", "b")):
    import anndata as ad

    rng = np.random.default_rng(seed)
    lab = rng.choice(list(types), n)
    base = rng.gamma(1.0, 2.0, size=(len(types), g))
    mu = base[[list(types).index(t) for t in lab]]
    x = rng.poisson(rng.gamma(5.0, mu / 5.0)).astype(np.float32)
    return ad.AnnData(X=sp.csr_matrix(x), obs=pd.DataFrame({"cell_type": lab}, index=[f"c{i}" for i in range(n)]),
                      var=pd.DataFrame(index=[f"g{j}" for j in range(g)]))


@pytest.fixture(scope="module")
def real():
    return load_dataset("pbmc68k")


@pytest.fixture(scope="module")
def model():
    return load_model("pbmc68k")
