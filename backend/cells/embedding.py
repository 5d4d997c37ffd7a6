"""A 2-D map of real cells (UMAP of 30 PCs, fit once) and the placement of generated cells on it.

Placement options: `knn` (deterministic: distance-weighted mean of the map positions of the 15 nearest real
cells in PC space; instant, labelled "approximate"), `umap` (umap-learn's `transform` of all generated cells in
one call: positions depend on the batch), or a `joint` UMAP of real + generated cells (layout changes per run).
PCs: normalize_total(1e4) + log1p, PCA on the real cells; generated cells use the real mean and components.
"""

from __future__ import annotations

import os
import threading
from pathlib import Path

import numpy as np

from backend.cells.data import log_normalize
from backend.cells.threads import one_thread

ROOT = Path(__file__).resolve().parents[2]
NUMBA_CACHE = ROOT / ".cache" / "numba"


def _numba_cache() -> None:
    """Compile numba functions once and keep them on disk (git-ignored .cache/numba)."""
    NUMBA_CACHE.mkdir(parents=True, exist_ok=True)
    os.environ.setdefault("NUMBA_CACHE_DIR", str(NUMBA_CACHE))
    try:
        import numba

        if not numba.config.CACHE_DIR:
            numba.config.CACHE_DIR = os.environ["NUMBA_CACHE_DIR"]
    except ImportError:  # pragma: no cover
        pass


def _pcs(counts, mean, components, chunk: int = 10_000) -> np.ndarray:
    import scipy.sparse as sp

    x = sp.csr_matrix(counts)
    out = np.empty((x.shape[0], components.shape[0]), np.float32)
    for s in range(0, x.shape[0], chunk):  # chunks keep the dense normalised block small for 100k cells
        d = log_normalize(x[s : s + chunk]).toarray()
        out[s : s + chunk] = (d - mean) @ components.T
    return out


def fit_umap(pcs: np.ndarray, seed: int = 0, n_neighbors: int = 15):
    _numba_cache()
    import warnings

    import umap

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        # force the NN-descent index even below 4,096 cells: umap's small-data path computes transform distances
        # with a Python-callable metric (10k cells into 700: 16 CPU-s vs 3.7 CPU-s with the index)
        return umap.UMAP(n_neighbors=min(n_neighbors, len(pcs) - 1), random_state=seed, min_dist=0.3,
                         force_approximation_algorithm=True).fit(pcs)


@one_thread
def fit_reference(real, n_pcs: int = 30, seed: int = 0, method: str = "umap") -> dict:
    """PCA (+ UMAP) of the real cells as a dict of tensors/lists (stored in the checkpoint)."""
    import torch
    from sklearn.decomposition import PCA

    x = log_normalize(real.X).toarray()
    mean = x.mean(0)
    n = max(2, min(n_pcs, x.shape[0] - 1, x.shape[1]))
    comps = PCA(n_components=n, random_state=seed, svd_solver="full").fit(x - mean).components_
    pcs = ((x - mean) @ comps.T).astype(np.float32)
    if method == "umap":
        coords = fit_umap(pcs, seed).embedding_.astype(np.float32)
    elif method == "pca":
        coords = pcs[:, :2].copy()
    else:
        raise ValueError(f"Unknown map {method!r}; use 'umap' or 'pca'.")
    return {"mean": torch.as_tensor(mean.astype(np.float32)), "components": torch.as_tensor(comps.astype(np.float32)),
            "pcs": torch.as_tensor(pcs), "coords": torch.as_tensor(coords), "obs_names": list(real.obs_names),
            "method": method, "seed": int(seed)}


class Embedding:
    """The map of real cells and placement of new cells on it (thread-safe lazy UMAP model)."""

    def __init__(self, ref: dict):
        self.mean = np.asarray(ref["mean"], np.float32)
        self.components = np.asarray(ref["components"], np.float32)
        self.pcs = np.asarray(ref["pcs"], np.float32)
        self.coords = np.asarray(ref["coords"], np.float32)
        self.obs_names = list(ref["obs_names"])
        self.method = ref.get("method", "umap")
        self.seed = int(ref.get("seed", 0))
        self._umap = None
        self._lock = threading.Lock()
        self._nn = None

    @classmethod
    def from_real(cls, real, method: str = "pca", seed: int = 0) -> Embedding:
        return cls(fit_reference(real, seed=seed, method=method))

    def project(self, counts) -> np.ndarray:
        return _pcs(counts, self.mean, self.components)

    @one_thread
    def place(self, counts, how: str = "knn", k: int = 15) -> np.ndarray:
        """Map coordinates of new cells: 'knn' (approximate, deterministic) or 'umap' (transform, one batch)."""
        if how == "knn":
            return self.place_knn(self.project(counts), k)
        if how == "umap":
            if self.method != "umap":
                raise ValueError("The map of real cells is a PCA view; compute the UMAP first to use UMAP transform.")
            return self.umap_model().transform(self.project(counts)).astype(np.float32)
        raise ValueError(f"Unknown placement {how!r}; use 'knn' or 'umap'.")

    def place_knn(self, pcs: np.ndarray, k: int = 15) -> np.ndarray:
        from sklearn.neighbors import NearestNeighbors

        with self._lock:
            if self._nn is None:
                self._nn = NearestNeighbors(n_neighbors=min(k, len(self.pcs))).fit(self.pcs)
        d, idx = self._nn.kneighbors(pcs, n_neighbors=min(k, len(self.pcs)))
        w = 1.0 / np.maximum(d, 1e-6)
        w /= w.sum(1, keepdims=True)
        return (self.coords[idx] * w[..., None]).sum(1).astype(np.float32)

    def umap_model(self):
        """The UMAP fit on the real PCs (same seed as the stored map, so positions agree); built once."""
        with self._lock:
            if self._umap is None:
                self._umap = fit_umap(self.pcs, self.seed)
                self.coords = self._umap.embedding_.astype(np.float32)
            return self._umap

    @one_thread
    def joint(self, counts, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
        """A fresh UMAP of real + generated cells together: (real coords, generated coords)."""
        g = self.project(counts)
        emb = fit_umap(np.concatenate([self.pcs, g]), seed).embedding_.astype(np.float32)
        return emb[: len(self.pcs)], emb[len(self.pcs):]


def warm_umap(seed: int = 0) -> float:
    """Compile umap/pynndescent (numba) on 200 random points: fit + transform; returns seconds."""
    import time

    t = time.time()
    rng = np.random.default_rng(seed)
    m = fit_umap(rng.normal(size=(200, 10)).astype(np.float32), seed)
    m.transform(rng.normal(size=(20, 10)).astype(np.float32))
    return time.time() - t
