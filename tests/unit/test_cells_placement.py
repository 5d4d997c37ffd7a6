"""Cells map: the reference embedding no call changes, ingest-style placement (also from threads), views, selections."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from tests.unit.cells_toy import model, real  # noqa: F401 (fixtures)


def test_knn_placement_of_real_cells_lands_on_them(model, real):
    from backend.cells import place_cells, reference_map

    ref = reference_map(model, real)
    placed = place_cells(ref, real[:50])
    pos = placed.obsm["X_umap"]
    assert pos.shape == (50, 2) and placed.obsm["X_pca"].shape == (50, ref.pcs.shape[1])
    span = ref.coords.max(0) - ref.coords.min(0)
    assert np.median(np.linalg.norm(pos - ref.coords[:50], axis=1)) < 0.1 * span.max()


def _generated(model, cell_type: str, n: int = 30, seed: int = 0):
    return model.generate(n, conditions={"cell_type": cell_type}, seed=seed, steps=4)


@pytest.mark.parametrize("how", ["knn", pytest.param("umap", marks=pytest.mark.slow)])
def test_placement_leaves_the_reference_unchanged(model, real, how):
    from backend.cells import place_cells, reference_map

    ref = reference_map(model, real)
    before = {k: getattr(ref, k).copy() for k in ("coords", "pcs", "mean", "components")}
    gen = _generated(model, "CD14+ Monocyte")
    placed = place_cells(ref, gen, how=how)
    assert placed is not gen and "X_umap" not in gen.obsm, "the input cells are not changed either"
    assert list(placed.obs_names) == list(gen.obs_names) and placed.obsm["X_umap"].shape == (gen.n_obs, 2)
    for k, v in before.items():
        assert np.array_equal(getattr(ref, k), v), f"placement changed the reference's {k}"
    with pytest.raises(ValueError):
        ref.coords[0, 0] = 1.0  # read-only: no caller can move the map
    assert reference_map(model, real) is ref, "one shared map per model"


def test_concurrent_placements_return_only_their_own_cells(model, real):
    from concurrent.futures import ThreadPoolExecutor

    from backend.cells import place_cells, reference_map

    ref = reference_map(model, real)
    coords = ref.coords.copy()
    jobs = {t: _generated(model, t, n=40, seed=i) for i, t in enumerate(["CD14+ Monocyte", "CD19+ B", "CD56+ NK"])}
    alone = {t: place_cells(ref, g).obsm["X_umap"] for t, g in jobs.items()}
    with ThreadPoolExecutor(3) as pool:
        together = dict(zip(jobs, pool.map(lambda t: place_cells(ref, jobs[t]), [*jobs] * 1)))
    for t, placed in together.items():
        assert set(placed.obs["cell_type"].astype(str)) == {t}, "a placement holds only its own cells"
        assert np.allclose(placed.obsm["X_umap"], alone[t]), "the same positions as when placed alone"
    assert np.array_equal(ref.coords, coords)


def test_explore_view_holds_the_request_s_cells(model, real):
    from backend.cells import CellsRequest, describe_selection, explore

    req = CellsRequest(choices=(("cell_type", "CD19+ B"),), weights=(1.5,), n=60, seed=3, steps=4)
    view = explore(model, real, req)
    assert explore(model, real, req) is view, "a repeated request is served from the kept views"
    gen_rows = view.table[view.table["source"] == "generated"]
    assert len(gen_rows) == 60 and set(gen_rows["cell_type"]) == {"CD19+ B"}
    assert (view.table["source"] == "real").sum() == real.n_obs
    assert view.comparison is not None and view.comparison.by == "cell_type" and view.counts.n_real >= 2
    sel = describe_selection(view, ids=list(gen_rows["row_id"][:10]) + [0, 1])
    assert sel.n == 12 and sel.composition.set_index("cell_type").loc["CD19+ B", "generated"] == 10


def test_selection_ids_and_composition():
    from backend.cells import ids_from_points
    from backend.cells.selection import composition

    pts = [{"customdata": [3], "curve_number": 1}, {"customdata": [1]}, {"x": 1}, {"customdata": ["7"]}]
    assert ids_from_points(pts) == [1, 3, 7]
    assert ids_from_points(None) == []
    t = pd.DataFrame({"row_id": range(5), "source": ["real", "real", "generated", "generated", "real"],
                      "cell_type": ["a", "b", "a", "a", "a"]})
    c = composition(t, [0, 2, 3, 4], "cell_type")
    assert c.set_index("cell_type").loc["a"].tolist() == [2, 2]
