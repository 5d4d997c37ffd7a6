"""Single-cell count data for the Cells page: the bundled pbmc68k cells with recovered integer counts,
a stratified held-out split, and validation of uploaded `.h5ad` count matrices.

scanpy ships `pbmc68k_reduced` (700 PBMCs x 765 genes) in its wheel; its `.raw.X` holds
`log1p(counts / n_counts * 1e4)` rounded to 3 decimals, so the integer counts are
`rint(expm1(raw.X) * n_counts / 1e4)` (verified in tests/unit/test_cells.py).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

DATASETS = ("pbmc68k",)
MAX_CATEGORIES = 100     # a column with more distinct values is an id, not an attribute
MAX_GENES = 2000         # uploads are reduced to this many highly variable genes
MAX_CELLS = 200_000


def recover_counts(raw_x, n_counts) -> tuple:
    """Integer counts from `log1p(counts / n_counts * 1e4)` (CSR or dense); returns (counts, residual).

    `residual` is the largest distance of an unrounded value from its integer (float64 maths).
    """
    import scipy.sparse as sp

    n_counts = np.asarray(n_counts, dtype=np.float64)
    if sp.issparse(raw_x):
        x = sp.csr_matrix(raw_x)
        rows = np.repeat(np.arange(x.shape[0]), np.diff(x.indptr))
        vals = np.expm1(x.data.astype(np.float64)) * n_counts[rows] / 1e4
        rounded = np.rint(vals)
        residual = float(np.abs(vals - rounded).max()) if vals.size else 0.0
        out = sp.csr_matrix((rounded.astype(np.float32), x.indices.copy(), x.indptr.copy()), shape=x.shape)
        out.eliminate_zeros()
        return out, residual
    vals = np.expm1(np.asarray(raw_x, dtype=np.float64)) * n_counts[:, None] / 1e4
    rounded = np.rint(vals)
    return sp.csr_matrix(rounded.astype(np.float32)), float(np.abs(vals - rounded).max())


def load_dataset(name: str = "pbmc68k"):
    """The bundled dataset as AnnData: X = integer counts (CSR, float32 storage), obs["cell_type"], obs["phase"].

    No network: scanpy's wheel carries the file.
    """
    if name != "pbmc68k":
        raise ValueError(f"Unknown dataset {name!r}; the bundled one is 'pbmc68k' (or upload an .h5ad).")
    return _pbmc68k().copy()


_CACHE: dict = {}


def _pbmc68k():
    if "pbmc68k" in _CACHE:
        return _CACHE["pbmc68k"]
    import importlib.util
    from pathlib import Path

    import anndata as ad

    # read the file scanpy bundles directly: importing scanpy itself (numba, ...) costs seconds
    spec = importlib.util.find_spec("scanpy")
    path = Path(spec.submodule_search_locations[0]) / "datasets" / "10x_pbmc68k_reduced.h5ad"
    src = ad.read_h5ad(path)
    counts, _ = recover_counts(src.raw.X, src.obs["n_counts"].to_numpy())
    obs = pd.DataFrame(index=src.obs_names.copy())
    obs["cell_type"] = pd.Categorical(src.obs["bulk_labels"].astype(str),
                                      categories=list(src.obs["bulk_labels"].cat.categories))
    obs["phase"] = pd.Categorical(src.obs["phase"].astype(str), categories=["G1", "S", "G2M"])
    obs["louvain"] = src.obs["louvain"].astype(str).astype("category")
    obs["n_counts"] = np.asarray(counts.sum(1)).ravel().astype(np.float32)  # over the 765 modelled genes
    var = pd.DataFrame(index=src.raw.var_names.copy())
    out = ad.AnnData(X=counts, obs=obs, var=var)
    out.uns["source"] = "scanpy pbmc68k_reduced (10x Genomics PBMC 68k subset), counts recovered from .raw.X"
    _CACHE["pbmc68k"] = out
    return out


def split_indices(labels, test_frac: float = 0.25, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Stratified train/test indices: every class keeps >= 1 training cell and, if it has >= 2, >= 1 test cell."""
    labels = np.asarray(labels).astype(str)
    rng = np.random.default_rng(seed)
    train, test = [], []
    for c in sorted(set(labels)):
        idx = np.flatnonzero(labels == c)
        rng.shuffle(idx)
        k = int(round(len(idx) * test_frac))
        k = min(max(k, 1 if len(idx) >= 2 else 0), len(idx) - 1)
        test += list(idx[:k])
        train += list(idx[k:])
    return np.sort(np.array(train, dtype=int)), np.sort(np.array(test, dtype=int))


# ---------------------------------------------------------------------------------------------------
# Uploads


def usable_columns(adata) -> list[str]:
    """obs columns usable as generation attributes: 2..MAX_CATEGORIES distinct non-missing values."""
    cols = []
    for c in adata.obs.columns:
        s = adata.obs[c]
        if pd.api.types.is_float_dtype(s) and not isinstance(s.dtype, pd.CategoricalDtype):
            continue  # continuous scores are not attributes
        n = s.dropna().astype(str).nunique()
        # values must repeat (an id column is not an attribute): at most one category per two cells
        if 2 <= n <= min(MAX_CATEGORIES, len(s) // 2) and s.notna().all():
            cols.append(str(c))
    return cols


COUNT_CHUNK = 1_000_000  # values checked per chunk: the checks' temporaries stay a few MB whatever the matrix


def count_matrix(adata):
    """The raw count matrix of an AnnData: `layers["counts"]` if present, else `X`, validated (ValueError) and
    returned as CSR float32. Values are checked in chunks and a dense matrix is converted in row blocks, so the
    memory used beyond the input is about the size of its non-zeros, never a float64 copy of the whole matrix."""
    import scipy.sparse as sp

    if adata.n_obs == 0:
        raise ValueError("The dataset holds no cells.")
    if adata.n_vars == 0:
        raise ValueError("The dataset holds no genes.")
    where = "layers['counts']" if "counts" in adata.layers else "X"
    x = adata.layers["counts"] if "counts" in adata.layers else adata.X
    if x is None:
        raise ValueError("The dataset has no expression matrix in X; store raw counts in X or layers['counts'].")
    if not sp.issparse(x):
        x = np.asarray(x)
    data = x.data if sp.issparse(x) else x.reshape(-1)
    if data.dtype.kind == "c":
        raise ValueError(f"{where} holds complex numbers; counts must be real integers.")
    if not np.issubdtype(data.dtype, np.number) or data.dtype.kind not in "biuf":
        raise ValueError(f"{where} is not numeric ({data.dtype}); store raw integer counts.")
    if data.dtype.kind == "f":
        for i in range(0, data.size, COUNT_CHUNK):
            _check_counts(data[i:i + COUNT_CHUNK], where)
    elif data.size and data.min() < 0:
        raise ValueError(f"{where} contains negative values (min {data.min():.3g}): it looks scaled or centred. "
                         "Upload raw counts (X or layers['counts']).")
    if sp.issparse(x):
        xs = sp.csr_matrix(x)
        data = np.empty(xs.data.shape, np.float32)
        for i in range(0, data.size, COUNT_CHUNK):
            data[i:i + COUNT_CHUNK] = np.rint(xs.data[i:i + COUNT_CHUNK])
        xs = sp.csr_matrix((data, xs.indices, xs.indptr), shape=xs.shape)
    else:  # dense: fill a preallocated CSR block by block (rows), never a full float copy
        rows, n = max(1, COUNT_CHUNK // max(1, x.shape[1])), x.shape[0]
        indptr = np.zeros(n + 1, dtype=np.int64)
        for i in range(0, n, rows):
            indptr[i + 1:i + rows + 1] = np.count_nonzero(np.rint(x[i:i + rows]), axis=1)
        np.cumsum(indptr, out=indptr)
        data, indices = np.empty(indptr[-1], np.float32), np.empty(indptr[-1], np.int32)
        for i in range(0, n, rows):
            block = np.rint(x[i:i + rows]).astype(np.float32)
            r, c = np.nonzero(block)
            data[indptr[i]:indptr[i] + len(r)], indices[indptr[i]:indptr[i] + len(r)] = block[r, c], c
        xs = sp.csr_matrix((data, indices, indptr), shape=x.shape)
    xs.eliminate_zeros()
    return xs


def _check_counts(chunk: np.ndarray, where: str) -> None:
    bad = ~np.isfinite(chunk)
    if bad.any():
        raise ValueError(f"{where} contains NaN or infinite values (at least {int(bad.sum())}); counts must be "
                         "finite integers.")
    if (chunk < 0).any():
        raise ValueError(f"{where} contains negative values (min {chunk.min():.3g}): it looks scaled or centred. "
                         "Upload raw counts (X or layers['counts']).")
    frac = np.abs(chunk - np.rint(chunk))
    if (frac > 1e-3).any():
        raise ValueError(f"{where} holds non-integer values (e.g. {chunk[frac > 1e-3][0]:.4g}): it looks normalised or "
                         "log-transformed. CFGen models raw counts; upload the integer UMI counts "
                         "(in X or layers['counts']).")


def prepare_counts(adata, condition_keys=(), max_genes: int = MAX_GENES):
    """A clean AnnData for training: integer counts (CSR) in X, chosen obs columns as categoricals,
    genes without counts dropped, at most `max_genes` highly variable genes, cells with no counts dropped.
    """
    import anndata as ad

    if adata.n_obs > MAX_CELLS:
        raise ValueError(f"The dataset has {adata.n_obs:,} cells; the in-app limit is {MAX_CELLS:,}. Subsample it first.")
    x = count_matrix(adata)
    keys = list(condition_keys or [])
    usable = usable_columns(adata)
    for k in keys:
        if k not in adata.obs.columns:
            raise ValueError(f"Column {k!r} is not in the dataset's obs; choose from: {', '.join(usable) or '(none)'}.")
        if k not in usable:
            n = adata.obs[k].astype(str).nunique()
            raise ValueError(f"Column {k!r} cannot be an attribute ({n} distinct values or missing entries); "
                             f"choose columns with 2 to {MAX_CATEGORIES} categories: {', '.join(usable) or '(none)'}.")
    obs = pd.DataFrame(index=adata.obs_names.astype(str))
    for k in keys:
        obs[k] = pd.Categorical(adata.obs[k].astype(str).to_numpy())
    out = ad.AnnData(X=x, obs=obs, var=pd.DataFrame(index=adata.var_names.astype(str)))
    out.var_names_make_unique()
    lib = np.asarray(out.X.sum(1)).ravel()
    if (lib > 0).sum() < 10:
        raise ValueError(f"Only {(lib > 0).sum()} cells have any counts; at least 10 are needed to train.")
    out = out[lib > 0].copy()
    genes = np.asarray((out.X > 0).sum(0)).ravel() > 0
    out = out[:, genes].copy()
    if out.n_vars > max_genes:
        out = out[:, highly_variable(out.X, max_genes)].copy()
    if out.n_vars < 10:
        raise ValueError(f"Only {out.n_vars} genes have counts; at least 10 are needed.")
    return out


def highly_variable(x, n: int) -> np.ndarray:
    """Indices (sorted) of the `n` genes with the highest dispersion (var/mean) of log-normalised counts,
    z-scored within 20 mean bins (the Seurat recipe, without needing scikit-misc)."""
    lx = log_normalize(x)
    mean = np.asarray(lx.mean(0)).ravel()
    sq = np.asarray(lx.multiply(lx).mean(0)).ravel()
    var = np.maximum(sq - mean**2, 0)
    disp = np.log(np.maximum(var, 1e-12) / np.maximum(mean, 1e-12))
    bins = pd.cut(mean, 20, labels=False)
    z = np.zeros_like(disp)
    for b in np.unique(bins):
        m = bins == b
        sd = disp[m].std()
        z[m] = (disp[m] - disp[m].mean()) / sd if sd > 0 else 0.0
    z[mean <= 0] = -np.inf
    return np.sort(np.argsort(-z, kind="stable")[:n])


def log_normalize(x, target: float = 1e4):
    """normalize_total(1e4) + log1p on a count matrix (CSR in, CSR float32 out)."""
    import scipy.sparse as sp

    x = sp.csr_matrix(x, dtype=np.float64)
    lib = np.asarray(x.sum(1)).ravel()
    scale = target / np.maximum(lib, 1e-12)
    y = sp.diags(scale) @ x
    y = sp.csr_matrix(y)
    y.data = np.log1p(y.data)
    return y.astype(np.float32)


def read_h5ad_counts(data):
    """Read an uploaded .h5ad and validate its counts (ValueError with a fix for each problem).

    Returns the AnnData (unchanged) and the list of usable attribute columns.
    """
    from backend.core.uploads import load_h5ad

    adata = load_h5ad(data)
    count_matrix(adata)
    cols = usable_columns(adata)
    if not cols:
        raise ValueError("No obs column can serve as an attribute: CFGen conditions on categorical columns with "
                         f"2 to {MAX_CATEGORIES} values and no missing entries. Add such a column (e.g. cell type) and "
                         "upload again.")
    return adata, cols


def split_real(model, real):
    """(train, test) AnnData of the real cells the model was trained on / never saw (from `model.split`)."""
    sp = getattr(model, "split", None) or {}
    if "train" in sp:
        tr, te = np.asarray(sp["train"]), np.asarray(sp["test"])
        return real[tr].copy(), real[te].copy()
    if "train_obs" in sp:
        return real[list(sp["train_obs"])].copy(), real[list(sp["test_obs"])].copy()
    raise ValueError("This model does not record which cells it was trained on; retrain it to evaluate.")
