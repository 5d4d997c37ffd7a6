"""`python -m backend.bench cells`: generation speed, placement on the cached real-cell UMAP vs recomputing
neighbors + UMAP on real + generated cells with scanpy's defaults (ratio measured in the same run), peak memory.
"""

from __future__ import annotations

import resource
import time

import numpy as np


def _peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def _timed(fn):
    t, c = time.perf_counter(), time.process_time()
    out = fn()
    return out, time.perf_counter() - t, time.process_time() - c


def run(quick: bool = False) -> list[dict]:
    import warnings

    import pandas as pd

    from backend.cells import DEFAULT_STEPS, load_dataset, load_model, place_cells, reference_map, split_real

    warnings.filterwarnings("ignore")
    n = 1000 if quick else 10_000
    rows = []
    model, real = load_model("pbmc68k"), load_dataset("pbmc68k")
    train, _ = split_real(model, real)
    labels = train.obs["cell_type"].astype(str).to_numpy()
    cond = pd.DataFrame({"cell_type": np.random.default_rng(0).choice(labels, n)})
    model.generate(50, conditions=cond[:50], seed=0)  # warm-up (allocations, first-call overhead)
    gen, wall, cpu = _timed(lambda: model.generate(n, conditions=cond, seed=0))
    rows.append({"bench": f"generate {n:,} cells ({DEFAULT_STEPS} midpoint steps, guidance 1)", "value": wall,
                 "unit": "s", "cpu_s": round(cpu, 2), "target": "< 3 s on 2 cores", "peak_rss_mb": round(_peak_mb())})

    emb = reference_map(model, real)
    place_cells(emb, gen[:10], how="knn")  # warm-up: imports, neighbour index
    _, wall_knn, cpu_knn = _timed(lambda: place_cells(emb, gen, how="knn"))
    rows.append({"bench": f"place {n:,} cells: k-NN on the stored map", "value": wall_knn, "unit": "s",
                 "cpu_s": round(cpu_knn, 2), "peak_rss_mb": round(_peak_mb())})
    _, wall_fit, cpu_fit = _timed(lambda: emb.umap_positions(emb.pcs[:1]))
    rows.append({"bench": "fit real-cell UMAP once + first transform (cached afterwards; numba disk cache)",
                 "value": wall_fit, "unit": "s", "cpu_s": round(cpu_fit, 2)})
    _, wall_jit, cpu_jit = _timed(lambda: place_cells(emb, gen[:20], how="umap"))
    rows.append({"bench": "UMAP transform of 20 cells (after the first call compiled the query path)",
                 "value": wall_jit, "unit": "s", "cpu_s": round(cpu_jit, 2)})
    _, wall_tr, cpu_tr = _timed(lambda: place_cells(emb, gen, how="umap"))
    rows.append({"bench": f"place {n:,} cells: UMAP transform on the cached real UMAP", "value": wall_tr, "unit": "s",
                 "cpu_s": round(cpu_tr, 2), "peak_rss_mb": round(_peak_mb())})

    def recompute():
        import anndata as ad
        import scanpy as sc

        both = ad.AnnData(X=np.zeros((real.n_obs + gen.n_obs, 1), np.float32))
        both.obsm["X_pca"] = np.concatenate([emb.pcs, emb.project(gen.X)])
        try:
            sc.pp.neighbors(both, use_rep="X_pca")
            how = "scanpy defaults"
        except AttributeError:  # pynndescent 0.7 returns csr_array, scanpy 1.11 calls getnnz (>= 4096 cells)
            sc.pp.neighbors(both, use_rep="X_pca", transformer="sklearn")
            how = "scanpy defaults, sklearn kNN (pynndescent 0.7 breaks scanpy 1.11 at >= 4096 cells)"
        sc.tl.umap(both)
        return how

    _, wall_re1, cpu_re1 = _timed(recompute)  # first call compiles scanpy/umap numba code
    how, wall_re, cpu_re = _timed(recompute)
    rows.append({"bench": f"recompute neighbors + UMAP on {real.n_obs + n:,} real + generated cells (2nd call)",
                 "value": wall_re, "unit": "s", "cpu_s": round(cpu_re, 2), "first_call_s": round(wall_re1, 1),
                 "note": how, "peak_rss_mb": round(_peak_mb())})
    rows.append({"bench": "speed-up: UMAP transform vs recompute (same run)", "value": wall_re / max(wall_tr, 1e-9),
                 "unit": "x", "target": ">= 3x"})
    rows.append({"bench": "speed-up: k-NN placement vs recompute (same run)", "value": wall_re / max(wall_knn, 1e-9),
                 "unit": "x"})
    rows.append({"bench": "peak memory (process RSS)", "value": _peak_mb(), "unit": "MB"})
    return rows
