"""Plain helpers behind the Cells page: conditions from UI choices, the map table of real + generated cells,
live held-out metrics with the NB baseline, selections (plotly points -> row ids -> composition, top genes),
and .h5ad export. No streamlit here; the page only draws what these return.
"""

from __future__ import annotations

import io
import os
import tempfile

import numpy as np
import pandas as pd

from backend.cells.threads import one_thread

ALL = "(all, training proportions)"
MAX_EVAL_CELLS = 3000


def split_real(model, real):
    """(train, test) AnnData of the real cells the model was trained on / never saw."""
    sp = getattr(model, "split", None) or {}
    if "train" in sp:
        tr, te = np.asarray(sp["train"]), np.asarray(sp["test"])
        return real[tr].copy(), real[te].copy()
    if "train_obs" in sp:
        return real[list(sp["train_obs"])].copy(), real[list(sp["test_obs"])].copy()
    raise ValueError("This model does not record which cells it was trained on; retrain it to evaluate.")


def make_conditions(model, train_obs, choices: dict, n: int, seed: int = 0):
    """UI choices {attribute: value or ALL} -> a conditions DataFrame with n rows (None when nothing chosen).

    ALL draws values with the training proportions (jointly with the other attributes set to ALL).
    """
    chosen = {k: v for k, v in choices.items() if v is not None}
    if not chosen:
        return None
    rng = np.random.default_rng(seed)
    out = pd.DataFrame(index=range(n))
    all_keys = [k for k, v in chosen.items() if v == ALL]
    if all_keys:
        rows = rng.choice(len(train_obs), size=n, replace=True)
        for k in all_keys:
            out[k] = train_obs[k].astype(str).to_numpy()[rows]
    for k, v in chosen.items():
        if v != ALL:
            if k not in model.condition_keys:
                raise ValueError(f"This model cannot condition on {k!r}.")
            out[k] = str(v)
    return out


def reference(model, real):
    """The map of real cells: the UMAP stored with the model, or a PCA view (instant) when there is none."""
    from backend.cells.embedding import Embedding

    if model.reference is not None and list(model.reference["obs_names"]) == list(real.obs_names):
        return Embedding(model.reference)
    return Embedding.from_real(real, method="pca")


@one_thread
def map_table(emb, real, gen, how: str = "knn", seed: int = 0, max_points: int = 100_000) -> tuple[pd.DataFrame, str]:
    """One table of real + generated cells with map coordinates (x, y), source, obs columns and `row_id`.

    how: 'knn' (approximate placement), 'umap' (transform, one batch) or 'joint' (fresh UMAP of both).
    Returns (table, note); beyond `max_points` generated cells the displayed set is a random subsample.
    """
    note = ""
    if how == "joint":
        rc, gc = emb.joint(gen.X, seed=seed)
        note = "Joint UMAP of real + generated cells: the whole layout is recomputed for every request."
    else:
        rc = emb.coords
        gc = emb.place(gen.X, how=how)
        note = ("Approximate placement: each generated cell sits at the distance-weighted mean map position of its "
                "15 nearest real cells in PC space." if how == "knn" else
                "UMAP transform of all generated cells in one call: positions depend on the batch.")
    rc = emb.coords if how != "joint" else rc
    r = pd.DataFrame({"x": rc[:, 0], "y": rc[:, 1], "source": "real"})
    for c in real.obs.columns:
        if c != "n_counts":
            r[c] = real.obs[c].astype(str).to_numpy()
    r["cell"] = list(real.obs_names)
    g = pd.DataFrame({"x": gc[:, 0], "y": gc[:, 1], "source": "generated"})
    for c in gen.obs.columns:
        if c != "size_factor":
            g[c] = gen.obs[c].astype(str).to_numpy()
    g["cell"] = list(gen.obs_names)
    if len(g) > max_points:
        g = g.sample(max_points, random_state=seed)
        note += f" Showing a random {max_points:,} of {gen.n_obs:,} generated cells."
    t = pd.concat([r, g], ignore_index=True)
    for c in t.columns:
        if t[c].dtype == object and c not in ("cell",):
            t[c] = t[c].fillna("(not conditioned)")
    t["row_id"] = np.arange(len(t))
    return t, note


@one_thread
def expression(real, gen, gene: str, table: pd.DataFrame) -> np.ndarray:
    """log1p(normalised) expression of `gene` for the rows of `table` (real then generated cells)."""
    from backend.cells.data import log_normalize

    if gene not in set(real.var_names):
        raise ValueError(f"Gene {gene!r} is not among the modelled genes.")
    vals = {}
    for ad_ in (real, gen):
        j = list(ad_.var_names).index(gene)
        x = log_normalize(ad_.X)[:, j].toarray().ravel()
        vals.update(dict(zip(ad_.obs_names, x)))
    return np.array([vals.get(c, 0.0) for c in table["cell"]], dtype=np.float32)


@one_thread
def live_metrics(model, real, gen, by: str | None = None, seed: int = 0) -> dict:
    """CFGen's generated cells, the NB baseline (same labels) and, as a reference, real training cells of the same
    groups, each against held-out real cells of those groups."""
    from backend.cells.metrics import baseline_cells, evaluate, reference_cells

    train, test = split_real(model, real)
    if gen.n_obs > MAX_EVAL_CELLS:
        gen = gen[np.random.default_rng(seed).choice(gen.n_obs, MAX_EVAL_CELLS, replace=False)].copy()
    if by is None or by not in gen.obs:
        test_sel = test
    else:
        test_sel = test[test.obs[by].astype(str).isin(set(gen.obs[by].astype(str)))].copy()
    if test_sel.n_obs < 2:
        raise ValueError("Fewer than 2 held-out real cells match these conditions; choose a more common value.")
    e_gen = evaluate(test_sel, gen, by=by)
    out = {"cfgen": e_gen, "n_test": int(test_sel.n_obs), "n_gen": int(gen.n_obs)}
    if by is not None and by in gen.obs and by in train.obs:
        labels = gen.obs[by].astype(str).to_numpy()
        out["baseline"] = evaluate(test_sel, baseline_cells(train, labels, by, seed=seed), by=by)
        # reference: real training cells of the same groups (as many as generated, at most all of them)
        try:
            out["real_train"] = evaluate(test_sel, reference_cells(train, labels, by, seed=seed, cap=True), by=by)
        except ValueError:  # no group with 2 training cells: no reference
            pass
    return out


@one_thread
def knn_category(emb, real, gen, by: str, k: int = 15) -> np.ndarray:
    """Label of each generated cell predicted by a k-NN classifier on real cells in PC space."""
    from sklearn.neighbors import KNeighborsClassifier

    clf = KNeighborsClassifier(n_neighbors=min(k, real.n_obs)).fit(emb.pcs, real.obs[by].astype(str).to_numpy())
    return clf.predict(emb.project(gen.X))


# --- selections ---------------------------------------------------------------------------------------


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

    from backend.cells.metrics import top_genes

    both = ad.concat([real[:, list(gen.var_names)] if list(real.var_names) != list(gen.var_names) else real, gen],
                     join="inner", index_unique=None)
    pos = {c: i for i, c in enumerate(both.obs_names)}
    shown = [pos[c] for c in table["cell"]]
    sub = both[shown]
    selected = table["row_id"].isin(list(ids)).to_numpy()
    return top_genes(sub, selected, n=n)


# --- export ---------------------------------------------------------------------------------------------


def h5ad_bytes(adata) -> bytes:
    """The AnnData as .h5ad file bytes."""
    a = adata.copy()
    for c in a.obs.columns:
        if a.obs[c].dtype == object:
            a.obs[c] = a.obs[c].astype(str)
    fd, path = tempfile.mkstemp(suffix=".h5ad")
    os.close(fd)
    try:
        a.write_h5ad(path)
        with open(path, "rb") as f:
            return f.read()
    finally:
        os.unlink(path)


def csv_bytes(df: pd.DataFrame) -> bytes:
    buf = io.StringIO()
    df.to_csv(buf, index=False)
    return buf.getvalue().encode()
