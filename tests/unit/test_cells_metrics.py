"""Cells metrics: distances, the PC space, the NB baseline, and the shipped model against it."""

from __future__ import annotations

import numpy as np
import pytest

from backend.cells import evaluate
from backend.cells.metrics import interval95, knn_f1, mmd2_unbiased, rbf_mmd, wasserstein2
from tests.unit.cells_toy import model, real, toy  # noqa: F401 (fixtures)


def test_distances_on_hand_made_sets():
    rng = np.random.default_rng(0)
    a = rng.normal(size=(60, 5))
    assert wasserstein2(a, a) == pytest.approx(0, abs=1e-6)
    assert rbf_mmd(a, a) == pytest.approx(0, abs=1e-9)
    shifted = a + np.array([3.0, 0, 0, 0, 0])
    assert wasserstein2(a, shifted) == pytest.approx(3.0, rel=1e-6)  # a pure shift moves every point by 3
    assert rbf_mmd(a, shifted) > 0.2 > rbf_mmd(a, a + 0.01)
    # unequal sizes go through the transport LP: a 2-point set vs itself duplicated is still 0
    assert wasserstein2(a[:2], np.concatenate([a[:2], a[:2]])) == pytest.approx(0, abs=1e-6)
    b = rng.normal(size=(400, 5))
    c = rng.normal(size=(400, 5))
    assert 0.35 < knn_f1(b, c) < 0.7, "two samples of one distribution are hard to tell apart"
    assert knn_f1(b, c + 10) > 0.99


def test_unbiased_mmd_hand_case():
    rng = np.random.default_rng(5)
    # identical distributions: ~0 at any size, where the biased estimate adds ~3 (1/n + 1/m) for the three
    # bandwidths (0.01, 0.1, 1) at which distinct points in 30 dimensions do not see each other
    small = [(rng.normal(size=(5, 30)), rng.normal(size=(5, 30))) for _ in range(200)]
    unbiased = np.mean([mmd2_unbiased(x, y) for x, y in small])
    biased = np.mean([rbf_mmd(x, y) for x, y in small])
    assert abs(unbiased) < 0.03 and biased > 1.0, (unbiased, biased)
    x, y = rng.normal(size=(300, 5)), rng.normal(size=(300, 5))
    same = mmd2_unbiased(x, y)
    assert abs(same) < 0.005
    # shifted: clearly above 0 (and above the same-distribution value), growing with the shift
    assert mmd2_unbiased(x, y + np.array([1.0, 0, 0, 0, 0])) > 0.02 > 4 * abs(same)
    assert mmd2_unbiased(x, y + 3.0) > mmd2_unbiased(x, y + 1.0) > 0.1
    # no self-similarity terms: a set against itself is below 0 (the diagonal is left out of the within-set means)
    assert mmd2_unbiased(x[:10], x[:10]) < 0
    with pytest.raises(ValueError, match="at least 2"):
        mmd2_unbiased(x[:1], y)


def test_interval95_hand_values_and_coverage():
    mean, lo, hi = interval95([1.0, 2.0, 3.0, 4.0, 5.0])
    # t_{0.975, 4} = 2.7764; sd = sqrt(2.5); half-width = 2.7764 * 1.5811 / sqrt(5) = 1.9632
    assert mean == 3.0 and lo == pytest.approx(3 - 1.9632, abs=1e-3) and hi == pytest.approx(3 + 1.9632, abs=1e-3)
    assert interval95([2.5]) == (2.5, 2.5, 2.5)
    rng = np.random.default_rng(0)
    hits = [lo <= 0 <= hi for _, lo, hi in (interval95(rng.normal(size=10)) for _ in range(1000))]
    assert 0.93 < np.mean(hits) < 0.97


def test_evaluate_ranks_only_types_with_20_real_cells():
    from tests.unit.cells_toy import toy

    t = toy(60, 30, seed=6, types=("a", "b"))
    lab = np.array(["a"] * 25 + ["b"] * 19 + ["a"] * 16)  # a: 41 cells, b: 19 (one below the cut)
    t.obs["cell_type"] = lab
    gen = toy(60, 30, seed=7, types=("a", "b"))
    gen.obs["cell_type"] = lab
    res = evaluate(t, gen, by="cell_type")
    per = res["per_type"].set_index("type")
    assert per.loc["b", "too_small"] and not per.loc["a", "too_small"] and res["n_types_large"] == 1
    assert res["w2_large"] == pytest.approx(per.loc["a", "w2"])
    assert res["mmd2_u_large"] == pytest.approx(per.loc["a", "mmd2_u"])
    assert res["mmd2_u"] == pytest.approx(per["mmd2_u"].mean())  # CFGen's protocol: every type
    assert res["w2_pooled"] > 0 and evaluate(t, gen, by="cell_type", large=19)["n_types_large"] == 2


def test_offset_and_spread_split_what_w2_mixes():
    from backend.cells.metrics import offset_and_spread

    rng = np.random.default_rng(3)
    a = rng.normal(size=(50, 4))
    assert offset_and_spread(a, a) == pytest.approx((0.0, 1.0))
    shrunk = a.mean(0) + 0.5 * (a - a.mean(0)) + np.array([0, 2.0, 0, 0])
    off, ratio = offset_and_spread(a, shrunk)
    assert off == pytest.approx(2.0) and ratio == pytest.approx(0.5)
    # on sets of 3 cells in 30 dimensions, a generator collapsed onto the true mean beats a second sample of the
    # true distribution on W2 (on average about sqrt(30) vs sqrt(2 * 30)): why the spread is shown beside W2
    draws = [rng.normal(size=(2, 3, 30)) for _ in range(50)]
    collapsed = np.mean([wasserstein2(x, np.zeros((3, 30))) for x, _ in draws])
    faithful = np.mean([wasserstein2(x, y) for x, y in draws])
    assert collapsed < 0.85 * faithful, (collapsed, faithful)


def test_evaluate_identical_and_per_type(real):
    sub = real[real.obs["cell_type"].isin(["CD19+ B", "CD56+ NK"])].copy()
    res = evaluate(sub, sub, by="cell_type")
    assert res["w2"] == pytest.approx(0, abs=1e-6) and res["rbf_mmd"] == pytest.approx(0, abs=1e-6)
    assert res["w2_pooled"] == pytest.approx(0, abs=1e-6)
    assert set(res["per_type"]["type"]) == {"CD19+ B", "CD56+ NK"}
    assert np.allclose(res["per_type"]["centroid_offset"], 0, atol=1e-6) and res["spread_ratio"] == pytest.approx(1)
    other = real[real.obs["cell_type"] == "Dendritic"][:126].copy()
    other.obs["cell_type"] = sub.obs["cell_type"].to_numpy()
    assert evaluate(sub, other, by="cell_type")["w2"] > 1.0


def test_reference_cells_counts_repeats_and_cap():
    from backend.cells.metrics import reference_cells

    t = toy(30, 5, seed=4, types=("a", "b"))
    n_a = int((t.obs["cell_type"] == "a").sum())
    ref = reference_cells(t, ["a"] * 3 + ["b"] * 2 + ["z"], "cell_type", seed=0)  # "z": no training cells, skipped
    assert list(ref.obs["cell_type"].astype(str)) == ["a"] * 3 + ["b"] * 2
    assert ref.obs_names.is_unique, "distinct cells while the group has enough"
    many = ["a"] * (n_a + 4)
    assert reference_cells(t, many, "cell_type").n_obs == n_a + 4  # with replacement beyond the group's size
    capped = reference_cells(t, many, "cell_type", cap=True)
    assert capped.n_obs == n_a and capped.obs_names.is_unique
    assert list(reference_cells(t, many, "cell_type", seed=1).obs_names) != list(
        reference_cells(t, many, "cell_type", seed=2).obs_names)


def test_projection_uses_the_real_mean():
    from backend.cells.metrics import PCASpace

    x = toy(80, 20, seed=1).X
    space = PCASpace(x, n_pcs=5)
    assert np.allclose(space.project(x), space.real, atol=1e-4)
    assert np.allclose(space.real.mean(0), 0, atol=1e-4)


def test_nb_baseline_moments():
    from backend.cells.metrics import NBBaseline

    t = toy(2000, 10, seed=2, types=("a",))
    nb = NBBaseline(t.X, t.obs["cell_type"])
    x = nb.sample(["a"] * 4000, seed=0)
    real = t.X.toarray()
    assert np.allclose(x.mean(0), real.mean(0), rtol=0.1, atol=0.05)
    assert np.allclose(x.var(0), real.var(0), rtol=0.25, atol=0.2)


def test_shipped_card_beats_baseline(model):
    card, ev = model.card, model.evaluation
    m, b = card["metrics"], card["baselines"]
    # pooled W2 over all held-out cells and unbiased MMD^2 over the types with >= 20 held-out cells (cells-pbmc68k.md)
    for k in ("w2_pooled", "mmd2_u_large"):
        assert m[k] < b["nb_" + k], (k, m[k], b["nb_" + k])
        assert m[k + "_lo"] <= m[k] <= m[k + "_hi"] and b["real_train_" + k + "_lo"] <= b["real_train_" + k]
    assert card["headline"]["value"] == m["w2_pooled"] and card["headline"]["baseline"] == b["nb_w2_pooled"]
    assert all(t["met"] for t in card["targets"])
    assert card["command"].startswith("python -m backend.train cells-pbmc68k")
    # the detail lives in the checkpoint's evaluation entry; the guidance weight was chosen on a validation split
    # carved from the training cells, not on the test cells; >= 10 generation seeds; small types flagged
    assert ev["n_eval"] >= 150 and "per_type" not in card and "validation" not in card and len(ev["seeds"]) >= 10
    assert ev["types_ge20"] == [r["type"] for r in ev["per_type"] if r["n_real"] >= 20]
    assert all(r["too_small"] == (r["n_real"] < 20) for r in ev["per_type"])
    val = ev["validation"]
    assert val["n_fit"] + val["n_val"] == ev["n_train"] and val["guidance"] in [r["guidance"] for r in val["rows"]]
    assert f"guidance {val['guidance']}" in card["readout"] and f"split seed {val['val_seed']}" in card["readout"]
    # per-type inverse dispersions (CFGen's covariate_specific_theta) ship with the model
    assert tuple(model.log_theta_type.shape) == (len(model.categories["cell_type"]), model.n_genes)


@pytest.mark.slow
def test_shipped_model_beats_baseline_live(model, real):
    """Re-measure on the held-out cells (two generation seeds) rather than trusting the card."""
    from backend.cells import split_real
    from backend.cells.heldout import compare_to_baseline

    train, test = split_real(model, real)
    assert not set(train.obs_names) & set(test.obs_names)
    g = model.evaluation["validation"]["guidance"]  # the weight chosen on validation
    comp = compare_to_baseline(model, train, test, replicates=(0, 1), guidance={"cell_type": g})
    assert comp["cfgen"]["w2_pooled"] < comp["baseline"]["w2_pooled"]
    assert comp["cfgen"]["mmd2_u_large"] < comp["baseline"]["mmd2_u_large"]
