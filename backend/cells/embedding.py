"""A 2-D map of real cells (UMAP of 30 PCs, fit once) and the placement of new cells on it.

Placement options: `knn` (deterministic: distance-weighted mean of the map positions of the 15 nearest real
cells in PC space; instant, labelled "approximate"), `umap` (umap-learn's `transform` of all generated cells in
one call: positions depend on the batch), or a `joint` UMAP of real + generated cells (layout changes per run).
PCs: normalize_total(1e4) + log1p, PCA on the real cells; generated cells use the real mean and components.
"""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass, field
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


@dataclass(frozen=True)
class ReferenceMap:
    """The map of real cells: PCA mean and components, the real cells' PCs and 2-D coordinates, all read-only.

    No call changes it: placement returns new arrays (`place_cells`). The UMAP model that `transform` needs is
    fit once on first use and kept in `_caches` (a cache beside the map; the stored coordinates stay as they are).
    """

    mean: np.ndarray
    components: np.ndarray
    pcs: np.ndarray
    coords: np.ndarray
    obs_names: tuple
    method: str = "umap"
    seed: int = 0
    _caches: dict = field(default_factory=dict, repr=False, compare=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    def __post_init__(self):
        for name in ("mean", "components", "pcs", "coords"):
            a = np.array(getattr(self, name), dtype=np.float32)  # a private copy, then frozen
            a.setflags(write=False)
            object.__setattr__(self, name, a)
        object.__setattr__(self, "obs_names", tuple(self.obs_names))

    @classmethod
    def from_stored(cls, ref: dict) -> ReferenceMap:
        return cls(ref["mean"], ref["components"], ref["pcs"], ref["coords"], ref["obs_names"],
                   ref.get("method", "umap"), int(ref.get("seed", 0)))

    @classmethod
    def from_real(cls, real, method: str = "pca", seed: int = 0) -> ReferenceMap:
        return cls.from_stored(fit_reference(real, seed=seed, method=method))

    def project(self, counts) -> np.ndarray:
        """PCs of new cells with the real cells' mean and components."""
        return _pcs(counts, self.mean, self.components)

    def knn_positions(self, pcs: np.ndarray, k: int = 15) -> np.ndarray:
        """Distance-weighted mean map position of the k nearest real cells in PC space."""
        nn = self._cached("knn", lambda: _neighbours(self.pcs, k))
        d, idx = nn.kneighbors(pcs, n_neighbors=min(k, len(self.pcs)))
        w = 1.0 / np.maximum(d, 1e-6)
        w /= w.sum(1, keepdims=True)
        return (self.coords[idx] * w[..., None]).sum(1).astype(np.float32)

    def umap_positions(self, pcs: np.ndarray) -> np.ndarray:
        """umap-learn's transform on the UMAP fit on the real PCs (same seed as the stored map)."""
        if self.method != "umap":
            raise ValueError("The map of real cells is a PCA view; compute the UMAP first to use UMAP transform.")
        model = self._cached("umap", lambda: fit_umap(self.pcs, self.seed))
        with self._lock:  # pynndescent prepares its search graph on the first query
            return model.transform(pcs).astype(np.float32)

    def _cached(self, key: str, build):
        with self._lock:
            if key not in self._caches:
                self._caches[key] = build()
            return self._caches[key]


def _neighbours(pcs: np.ndarray, k: int):
    from sklearn.neighbors import NearestNeighbors

    return NearestNeighbors(n_neighbors=min(k, len(pcs))).fit(pcs)


@one_thread
def place_cells(reference: ReferenceMap, cells, how: str = "knn", seed: int = 0):
    """New cells placed on the reference map, in the manner of `scanpy.tl.ingest`: a copy of `cells` with
    `obsm["X_umap"]` (map positions) and `obsm["X_pca"]` (PCs in the reference's space); the reference is
    left as it is. how: 'knn' (approximate, deterministic), 'umap' (transform, one batch) or 'joint' (a fresh
    UMAP of real + new cells; the real cells' positions in that layout go to `uns["reference_umap"]`)."""
    out = cells.copy()
    pcs = reference.project(cells.X)
    if how == "knn":
        pos = reference.knn_positions(pcs)
    elif how == "umap":
        pos = reference.umap_positions(pcs)
    elif how == "joint":
        emb = fit_umap(np.concatenate([reference.pcs, pcs]), seed).embedding_.astype(np.float32)
        pos = emb[len(reference.pcs):]
        out.uns["reference_umap"] = emb[: len(reference.pcs)]
    else:
        raise ValueError(f"Unknown placement {how!r}; use 'knn', 'umap' or 'joint'.")
    out.obsm["X_pca"] = pcs
    out.obsm["X_umap"] = pos
    out.uns["placement"] = how
    return out


def warm_umap(seed: int = 0) -> float:
    """Compile umap/pynndescent (numba) on 200 random points: fit + transform; returns seconds."""
    import time

    t = time.time()
    rng = np.random.default_rng(seed)
    m = fit_umap(rng.normal(size=(200, 10)).astype(np.float32), seed)
    m.transform(rng.normal(size=(20, 10)).astype(np.float32))
    return time.time() - t
