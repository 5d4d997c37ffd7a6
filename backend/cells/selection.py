"""A selection on the Cells map (lasso or box): plotly points -> row ids -> composition and top genes."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from backend.cells.data import log_normalize
from backend.cells.threads import one_thread


@dataclass
class Selection:
    """What a selection holds: its size, composition (real vs generated per value of `by`) and top genes
    (None with `error` set when there are too few cells on either side)."""

    n: int
    by: str
    composition: pd.DataFrame
    top_genes: pd.DataFrame | None
    error: str | None = None


def ids_from_points(points) -> list[int]:
    """Row ids from plotly selection points (each carries `customdata` = [row_id]); robust to missing fields."""
    ids = []
    for p in points or []:
        cd = p.get("customdata") if isinstance(p, dict) else None
        if cd is None:
            continue
        v = cd[0] if isinstance(cd, (list, tuple)) else cd
        try:
            ids.append(int(v))
        except (TypeError, ValueError):
            continue
    return sorted(set(ids))


def composition(table: pd.DataFrame, ids, by: str) -> pd.DataFrame:
    """Counts of selected cells per value of `by`, real vs generated."""
    sel = table[table["row_id"].isin(list(ids))]
    if sel.empty:
        return pd.DataFrame(columns=[by, "real", "generated"])
    c = sel.groupby([by, "source"]).size().unstack(fill_value=0)
    for s in ("real", "generated"):
        if s not in c:
            c[s] = 0
    return c[["real", "generated"]].sort_values("real", ascending=False).reset_index()


def selection_genes(real, gen, table: pd.DataFrame, ids, n: int = 10) -> pd.DataFrame:
    """Top genes of the selected cells (real and generated pooled) against all other shown cells."""
    import anndata as ad

    both = ad.concat([real[:, list(gen.var_names)] if list(real.var_names) != list(gen.var_names) else real, gen],
                     join="inner", index_unique=None)
    pos = {c: i for i, c in enumerate(both.obs_names)}
    sub = both[[pos[c] for c in table["cell"]]]
    return top_genes(sub, table["row_id"].isin(list(ids)).to_numpy(), n=n)


def describe_selection(view, points=None, ids=None) -> Selection:
    """The selection made on a `CellsView`'s map (plotly `points`, or row `ids`)."""
    ids = ids_from_points(points) if ids is None else [int(i) for i in ids]
    table = view.table
    ids = [i for i in ids if 0 <= i < len(table)]
    by = view.keys[0] if view.keys and view.keys[0] in table else "source"
    comp = composition(table, ids, by)
    try:
        genes, error = selection_genes(view.real, view.generated, table, ids), None
    except ValueError as e:
        genes, error = None, str(e)
    return Selection(len(ids), by, comp, genes, error)


@one_thread
def top_genes(adata, selected: np.ndarray, n: int = 10) -> pd.DataFrame:
    """Welch t-test of log-normalised expression, selected cells vs the rest (as cellxgene), top `n` by t,
    with Bonferroni-corrected p-values and log2 fold change."""
    from scipy import stats

    selected = np.asarray(selected, bool)
    if selected.sum() < 2 or (~selected).sum() < 2:
        raise ValueError("Select at least 2 cells (and leave at least 2 outside the selection) to rank genes.")
    x = log_normalize(adata.X).toarray()
    a, b = x[selected], x[~selected]
    with np.errstate(invalid="ignore", divide="ignore"):
        t, p = stats.ttest_ind(a, b, equal_var=False)
    t = np.nan_to_num(t, nan=0.0)
    p = np.nan_to_num(p, nan=1.0)
    lfc = np.log2(np.expm1(a).mean(0) + 1e-9) - np.log2(np.expm1(b).mean(0) + 1e-9)
    order = np.argsort(-t)[:n]
    return pd.DataFrame({"gene": np.asarray(adata.var_names)[order], "t": t[order].round(2),
                         "log2_fc": lfc[order].round(2), "p_adj": np.minimum(p[order] * x.shape[1], 1.0),
                         "mean_selected": a.mean(0)[order].round(3), "mean_rest": b.mean(0)[order].round(3)})
