"""Cells: CFGen flow matching on single-cell counts (Palma et al., "Multi-Modal and Multi-Attribute Generation of
Single Cells with CFGen", ICLR 2025, arXiv 2407.11734).

Public API (stable; checks outside the UI call it):

    real = load_dataset("pbmc68k")      # AnnData; X = integer counts (CSR); obs["cell_type"], obs["phase"]
    model = load_model("pbmc68k")       # cached
    gen = model.generate(n=500, conditions={"cell_type": "CD14+ Monocyte"}, guidance=None, seed=0)
    m2 = fit(adata, condition_keys=["cell_type"], max_seconds=120, seed=0, progress=None)
    evaluate(real, gen, by="cell_type")  # {"rbf_mmd", "w2", "knn_f1", "per_type": DataFrame}
"""

from __future__ import annotations

from backend.cells.api import CellsModel, load_model, load_model_bytes
from backend.cells.data import load_dataset, read_h5ad_counts, split_indices, usable_columns
from backend.cells.metrics import count_stats, evaluate, top_genes


def fit(adata, condition_keys=("cell_type",), max_seconds: float = 120, seed: int = 0, progress=None, **kw):
    """Train CFGen on an AnnData of raw counts within `max_seconds` (time-budgeted); returns a `CellsModel`.

    `condition_keys=[]` trains an unconditional model. 10% of the cells (stratified) are held out and kept
    in `model.test_data` for evaluation. Cancels through `progress` (raises `Cancelled`).
    """
    from backend.cells.threads import single_thread
    from backend.cells.train import fit_model

    # one thread: on a shared 2-core machine extra threads mostly spin (measured: 10k x 2000 cells, 2 threads,
    # 21 autoencoder steps in 50 s under load; see threads.py), and the app stays responsive for other users
    with single_thread():
        return fit_model(adata, condition_keys, max_seconds=max_seconds, seed=seed, progress=progress, **kw)


__all__ = ["CellsModel", "count_stats", "evaluate", "fit", "load_dataset", "load_model", "load_model_bytes",
           "read_h5ad_counts", "split_indices", "top_genes", "usable_columns"]
