"""One request of the Cells page, one result: generate cells for chosen attributes, place them on the reference
map of real cells (which no request changes), and measure them against held-out cells.

    view = explore(model, real, CellsRequest(choices=(("cell_type", "CD14+ Monocyte"),), weights=(1.5,)))
    view.generated        # AnnData of counts, obsm["X_umap"] = map position (in the manner of scanpy.tl.ingest)
    view.table            # real + generated cells with x, y, source, attributes, row_id: what the map draws
    view.comparison       # HeldoutComparison (or view.comparison_error)
"""

from __future__ import annotations

import threading
import weakref
from collections import OrderedDict
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from backend.cells.comparison import CountRealism, HeldoutComparison, compare_heldout, count_realism
from backend.cells.data import log_normalize, split_real
from backend.cells.embedding import ReferenceMap, place_cells
from backend.cells.flow import DEFAULT_STEPS
from backend.cells.threads import one_thread

ALL = "(all, training proportions)"
NOT_SET = "(not conditioned)"
PLACEMENTS = {"knn": "k-NN placement (approximate, instant)", "umap": "UMAP transform (batch-dependent)",
              "joint": "Joint UMAP of real + generated (recomputed)"}
SOLVERS = ("midpoint", "euler")
MAX_POINTS = 100_000
NOTES = {"knn": "Approximate placement: each generated cell sits at the distance-weighted mean map position of its "
                "15 nearest real cells in PC space.",
         "umap": "UMAP transform of all generated cells in one call: positions depend on the batch.",
         "joint": "Joint UMAP of real + generated cells: the whole layout is recomputed for every request."}


@dataclass(frozen=True)
class CellsRequest:
    """What to generate: per attribute a value (or ALL: training proportions) and a guidance weight."""

    choices: tuple = ()  # ((attribute, value), ...)
    weights: tuple = ()  # one guidance weight per choice
    n: int = 500
    seed: int = 0
    steps: int = DEFAULT_STEPS
    solver: str = "midpoint"
    placement: str = "knn"


@dataclass
class CellsView:
    request: CellsRequest
    keys: list
    real: object  # AnnData of the real cells (shared, read-only)
    generated: object  # AnnData of generated counts with obsm["X_umap"]
    table: pd.DataFrame
    map_kind: str  # "umap" | "pca"
    note: str
    comparison: HeldoutComparison | None = None
    comparison_error: str | None = None
    counts: CountRealism | None = None
    obs_columns: list = field(default_factory=list)


_maps: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
_maps_lock = threading.Lock()


def reference_map(model, real) -> ReferenceMap:
    """The map of real cells: the UMAP stored with the model, or a PCA view (instant) when there is none.
    Built once per model and shared; it is immutable."""
    with _maps_lock:
        if model not in _maps:
            ref = model.reference
            _maps[model] = ReferenceMap.from_stored(ref) if ref is not None and \
                list(ref["obs_names"]) == list(real.obs_names) else ReferenceMap.from_real(real, method="pca")
        return _maps[model]


def make_conditions(train_obs, choices: dict, n: int, seed: int = 0):
    """Choices {attribute: value or ALL} -> a conditions DataFrame with n rows (None when nothing is chosen).
    ALL draws values with the training proportions (jointly with the other attributes set to ALL)."""
    chosen = {k: v for k, v in choices.items() if v is not None and v != NOT_SET}
    if not chosen:
        return None
    rng = np.random.default_rng(seed)
    out = pd.DataFrame(index=range(n))
    rows = rng.choice(len(train_obs), size=n, replace=True)
    for k, v in chosen.items():
        out[k] = train_obs[k].astype(str).to_numpy()[rows] if v == ALL else str(v)
    return out


def generate_cells(model, real, request: CellsRequest):
    choices = {k: v for k, v in request.choices if v != NOT_SET}
    unknown = [k for k in choices if k not in model.condition_keys]
    if unknown:
        raise ValueError(f"This model cannot condition on {unknown[0]!r}.")
    train, _ = split_real(model, real)
    cond = make_conditions(train.obs, choices, request.n, request.seed)
    guidance = {k: float(w) for (k, v), w in zip(request.choices, request.weights) if v != NOT_SET}
    return model.generate(request.n, conditions=cond, guidance=guidance, seed=request.seed, steps=request.steps,
                          solver=request.solver)


def map_table(reference: ReferenceMap, real, placed, seed: int = 0) -> tuple[pd.DataFrame, str]:
    """Real + placed generated cells as one table: x, y, source, obs columns, cell, row_id (and a note)."""
    how = placed.uns.get("placement", "knn")
    rc = placed.uns.get("reference_umap", reference.coords)
    r = pd.DataFrame({"x": rc[:, 0], "y": rc[:, 1], "source": "real"})
    for c in real.obs.columns:
        if c != "n_counts":
            r[c] = real.obs[c].astype(str).to_numpy()
    r["cell"] = list(real.obs_names)
    gc = placed.obsm["X_umap"]
    g = pd.DataFrame({"x": gc[:, 0], "y": gc[:, 1], "source": "generated"})
    for c in placed.obs.columns:
        if c != "size_factor":
            g[c] = placed.obs[c].astype(str).to_numpy()
    g["cell"] = list(placed.obs_names)
    note = NOTES[how]
    if len(g) > MAX_POINTS:
        g = g.sample(MAX_POINTS, random_state=seed)
        note += f" Showing a random {MAX_POINTS:,} of {placed.n_obs:,} generated cells."
    t = pd.concat([r, g], ignore_index=True)
    for c in t.columns:
        if t[c].dtype == object and c != "cell":
            t[c] = t[c].fillna(NOT_SET)
    t["row_id"] = np.arange(len(t))
    return t, note


_views: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
KEEP_VIEWS = 8


def explore(model, real, request: CellsRequest) -> CellsView:
    """Generate, place on the reference map and measure: everything one request of the page shows.
    The last few views per model are kept (shared by all callers: a view is never changed after it is made)."""
    key = (request, tuple(real.obs_names[:3]), real.n_obs)
    with _maps_lock:
        views = _views.setdefault(model, OrderedDict())
        if key in views:
            views.move_to_end(key)
            return views[key]
    view = _explore(model, real, request)
    with _maps_lock:
        views[key] = view
        while len(views) > KEEP_VIEWS:
            views.popitem(last=False)
    return view


def _explore(model, real, request: CellsRequest) -> CellsView:
    reference = reference_map(model, real)
    if request.placement not in PLACEMENTS:
        raise ValueError(f"Unknown placement {request.placement!r}; use one of {', '.join(PLACEMENTS)}.")
    if request.placement == "umap" and reference.method != "umap":
        raise ValueError("The map of real cells is a PCA view; choose k-NN placement or the joint UMAP.")
    gen = generate_cells(model, real, request)
    placed = place_cells(reference, gen, how=request.placement, seed=request.seed)
    table, note = map_table(reference, real, placed, seed=request.seed)
    keys = list(model.condition_keys)
    chosen = dict(request.choices)
    first = keys[0] if keys else None
    by = first if first and chosen.get(first, NOT_SET) != NOT_SET else None
    view = CellsView(request, keys, real, placed, table, reference.method, note,
                     obs_columns=[c for c in real.obs.columns if c != "n_counts"])
    try:
        view.comparison = compare_heldout(model, real, gen, by=by)
    except ValueError as e:
        view.comparison_error = str(e)
    value = chosen.get(first) if by and chosen.get(first) != ALL else None
    try:
        view.counts = count_realism(model, real, gen, first if value else None, value)
    except ValueError as e:  # no held-out cells (a small upload): the page says metrics are unavailable
        view.comparison_error = view.comparison_error or str(e)
    return view


@one_thread
def gene_expression(view: CellsView, gene: str) -> np.ndarray:
    """log1p(normalised) expression of `gene` for the rows of the view's table (real then generated cells)."""
    real, gen = view.real, view.generated
    if gene not in set(real.var_names):
        raise ValueError(f"Gene {gene!r} is not among the modelled genes.")
    vals = {}
    for a in (real, gen):
        j = list(a.var_names).index(gene)
        vals.update(zip(a.obs_names, log_normalize(a.X)[:, j].toarray().ravel()))
    return np.array([vals.get(c, 0.0) for c in view.table["cell"]], dtype=np.float32)
