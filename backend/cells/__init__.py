"""Cells: CFGen flow matching on single-cell counts (Palma et al., "Multi-Modal and Multi-Attribute Generation of
Single Cells with CFGen", ICLR 2025, arXiv 2407.11734).

Public API (stable; checks outside the UI call it):

    real = load_dataset("pbmc68k")      # AnnData; X = integer counts (CSR); obs["cell_type"], obs["phase"]
    model = load_model("pbmc68k")       # cached; model.card (slim), model.evaluation (held-out detail)
    gen = model.generate(n=500, conditions={"cell_type": "CD14+ Monocyte"}, guidance=None, seed=0)
    placed = place_cells(reference_map(model, real), gen)   # a copy of gen with obsm["X_umap"]; map unchanged
    view = explore(model, real, CellsRequest(...))          # one page request: cells, map table, metrics
    m2 = fit(adata, condition_keys=["cell_type"], max_seconds=120, seed=0, progress=None)
    evaluate(real, gen, by="cell_type")  # {"rbf_mmd", "w2", "knn_f1", "per_type": DataFrame}
"""

from __future__ import annotations

from backend.cells.api import CellsModel, load_model, load_model_bytes, shipped_evaluation
from backend.cells.comparison import (
    CheckpointReport,
    CountRealism,
    HeldoutComparison,
    augmentation_summary,
    checkpoint_report,
    compare_heldout,
    comparison_cells,
    count_realism,
    rare_type_augmentation,
)
from backend.cells.data import load_dataset, read_h5ad_counts, split_indices, split_real, usable_columns
from backend.cells.embedding import ReferenceMap, place_cells
from backend.cells.explorer import (
    ALL,
    NOT_SET,
    PLACEMENTS,
    SOLVERS,
    CellsRequest,
    CellsView,
    explore,
    gene_expression,
    make_conditions,
    reference_map,
)
from backend.cells.export import csv_bytes, h5ad_bytes
from backend.cells.flow import DEFAULT_STEPS
from backend.cells.metrics import count_stats, evaluate
from backend.cells.selection import Selection, describe_selection, ids_from_points, top_genes


def fit(adata, condition_keys=("cell_type",), max_seconds: float = 120, seed: int = 0, progress=None, **kw):
    """Train CFGen on an AnnData of raw counts within `max_seconds` (time-budgeted); returns a `CellsModel`.

    `condition_keys=[]` trains an unconditional model. 10% of the cells (stratified) are held out and kept
    in `model.test_data` for evaluation. Training runs on the shared loop (`backend.core.training.train`),
    phases sized from a short timed run. Cancels through `progress` (raises `Cancelled`).
    """
    from backend.cells.threads import single_thread
    from backend.cells.train import fit_model

    # one thread: on a shared 2-core machine extra threads mostly spin (see threads.py), and the app stays
    # responsive for other users
    with single_thread():
        return fit_model(adata, condition_keys, max_seconds=max_seconds, seed=seed, progress=progress, **kw)


__all__ = ["ALL", "DEFAULT_STEPS", "NOT_SET", "PLACEMENTS", "SOLVERS", "CellsModel", "CellsRequest", "CellsView",
           "CheckpointReport", "CountRealism", "HeldoutComparison", "ReferenceMap", "Selection",
           "augmentation_summary", "checkpoint_report", "compare_heldout", "comparison_cells", "count_realism",
           "count_stats", "csv_bytes", "describe_selection", "evaluate", "explore", "fit", "gene_expression",
           "h5ad_bytes", "ids_from_points", "load_dataset", "load_model", "load_model_bytes", "make_conditions",
           "place_cells", "rare_type_augmentation", "read_h5ad_counts", "reference_map", "shipped_evaluation",
           "split_indices", "split_real", "top_genes", "usable_columns"]
