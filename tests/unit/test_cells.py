"""Unit tests of the Cells domain (CFGen): count recovery, NB sampling, flow/guidance, metrics, shipped model, fit,
upload validation, selections."""

from __future__ import annotations

import io
import os
import subprocess
import sys
import tempfile

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

from backend.cells import evaluate, fit, load_dataset, load_model, read_h5ad_counts
from backend.cells.data import recover_counts
from backend.cells.metrics import knn_f1, rbf_mmd, wasserstein2


@pytest.fixture(scope="module")
def real():
    return load_dataset("pbmc68k")


@pytest.fixture(scope="module")
def model():
    return load_model("pbmc68k")


def _h5ad_bytes(adata) -> bytes:
    fd, path = tempfile.mkstemp(suffix=".h5ad")
    os.close(fd)
    try:
        adata.write_h5ad(path)
        return open(path, "rb").read()
    finally:
        os.unlink(path)


def _toy(n=300, g=40, seed=0, types=("a", "b")):
    import anndata as ad

    rng = np.random.default_rng(seed)
    lab = rng.choice(list(types), n)
    base = rng.gamma(1.0, 2.0, size=(len(types), g))
    mu = base[[list(types).index(t) for t in lab]]
    x = rng.poisson(rng.gamma(5.0, mu / 5.0)).astype(np.float32)
    return ad.AnnData(X=sp.csr_matrix(x), obs=pd.DataFrame({"cell_type": lab}, index=[f"c{i}" for i in range(n)]),
                      var=pd.DataFrame(index=[f"g{j}" for j in range(g)]))


# --- data -----------------------------------------------------------------------------------------------


def test_count_recovery_is_exact():
    import importlib.util
    from pathlib import Path

    import anndata as ad

    path = Path(importlib.util.find_spec("scanpy").submodule_search_locations[0]) / "datasets" / \
        "10x_pbmc68k_reduced.h5ad"
    src = ad.read_h5ad(path)
    n_counts = src.obs["n_counts"].to_numpy().astype(np.float64)
    counts, residual = recover_counts(src.raw.X, n_counts)
    assert residual < 0.1, "every unrounded value must lie within 0.1 of an integer"
    assert counts.data.min() >= 1 and counts.data.max() <= 259
    assert np.all(counts.data == np.rint(counts.data))
    # recomputing the stored log values reproduces all but a handful (float32 rounding boundaries)
    rows = np.repeat(np.arange(counts.shape[0]), np.diff(counts.indptr))
    again = np.round(np.log1p(counts.data.astype(np.float64) / n_counts[rows] * 1e4), 3)
    stored = sp.csr_matrix(src.raw.X).data.astype(np.float64)
    assert (np.abs(again - stored) > 1.5e-3).sum() <= 10


def test_dataset_shape_and_labels(real):
    assert real.shape == (700, 765) and sp.issparse(real.X)
    assert np.all(real.X.data > 0) and np.allclose(real.X.data, np.rint(real.X.data))
    vc = real.obs["cell_type"].value_counts()
    assert len(vc) == 10 and vc["Dendritic"] == 240 and vc["CD4+/CD45RA+/CD25- Naive T"] == 8
    assert set(real.obs["phase"].astype(str)) == {"G1", "S", "G2M"}


def test_split_is_stratified_and_disjoint(real):
    from backend.cells import split_indices

    tr, te = split_indices(real.obs["cell_type"], 0.25, seed=0)
    assert len(set(tr) & set(te)) == 0 and len(tr) + len(te) == real.n_obs
    for t in real.obs["cell_type"].cat.categories:
        assert (real.obs["cell_type"].iloc[te] == t).sum() >= 1


# --- negative binomial ----------------------------------------------------------------------------------


def test_nb_log_prob_matches_scipy():
    import torch
    from scipy import stats

    from backend.cells.model import nb_log_prob

    x = np.array([0, 1, 3, 10, 50], dtype=np.float64)
    mu, theta = 4.0, 1.7
    ours = nb_log_prob(torch.tensor(x), torch.tensor(mu, dtype=torch.float64), torch.tensor(theta,
                       dtype=torch.float64)).numpy()
    ref = stats.nbinom.logpmf(x, theta, theta / (theta + mu))
    assert np.allclose(ours, ref, atol=1e-5)


def test_nb_sampling_integers_mean_variance():
    from backend.cells.model import sample_nb

    rng = np.random.default_rng(0)
    mu = np.array([0.5, 5.0, 40.0])
    theta = np.array([2.0, 0.5, 10.0])
    x = sample_nb(np.broadcast_to(mu, (200_000, 3)), theta, rng)
    assert np.all(x == np.rint(x)) and x.min() >= 0
    assert np.allclose(x.mean(0), mu, rtol=0.03)
    assert np.allclose(x.var(0), mu + mu**2 / theta, rtol=0.06)


def test_nb_sampler_matches_the_pmf_on_both_paths():
    """Inverse-CDF path (small means) and Gamma-Poisson path (large means) both follow NB(mu, theta)."""
    import torch
    from scipy import stats

    from backend.cells.model import nb_csr, sample_nb_dense

    mu = torch.tensor([0.05, 0.8, 3.0, 12.0, 60.0])
    theta = torch.tensor([0.4, 100.0, 0.35, 2.0, 0.5])
    x = sample_nb_dense(mu.expand(200_000, 5), theta, torch.Generator().manual_seed(0)).numpy()
    assert np.all(x == np.rint(x)) and x.min() >= 0
    for j in range(5):
        m, t = float(mu[j]), float(theta[j])
        ks = np.arange(6)
        emp = np.array([(x[:, j] == k).mean() for k in ks])
        assert np.abs(emp - stats.nbinom.pmf(ks, t, t / (t + m))).max() < 0.005, j
        assert x[:, j].mean() == pytest.approx(m, rel=0.03)
    # per-row inverse dispersions (one theta row per cell, e.g. per cell type) and the sparse output agree
    th2 = torch.tensor([[0.5] * 5, [50.0] * 5]).repeat(50_000, 1)
    g1, g2 = torch.Generator().manual_seed(3), torch.Generator().manual_seed(3)
    dense = sample_nb_dense(torch.full((100_000, 5), 4.0), th2, g1).numpy()
    assert dense[0::2].var() > 4 * dense[1::2].var()  # theta 0.5: var 36; theta 50: var 4.3
    csr = nb_csr(torch.full((100_000, 5), 4.0), th2, g2)
    assert (csr != sp.csr_matrix(dense)).nnz == 0


def test_type_theta_fit_keeps_empty_groups():
    import torch

    from backend.cells.model import NBAutoencoder, fit_group_theta

    torch.manual_seed(0)
    ae = NBAutoencoder(8, (16,), 3)
    counts = torch.poisson(torch.full((40, 8), 3.0))
    counts[:20, 0] = 0  # a gene never seen in type 0: unbounded ML would send its theta to 0
    with torch.no_grad():
        ae.log_theta.copy_(torch.linspace(-1.0, 2.0, 8))
    out = fit_group_theta(ae, counts, torch.tensor([0] * 20 + [2] * 20), 3, steps=200)
    assert out.shape == (3, 8)
    assert torch.equal(out[1], ae.log_theta.detach()), "a type without cells keeps the shared theta"
    assert not torch.equal(out[0], ae.log_theta.detach())
    assert out.min() >= -1.0 - 1e-6, "no theta below the smallest shared one"


@pytest.mark.parametrize("balanced", [False, True])
def test_flow_conditioned_rows_class_balanced(balanced):
    """balanced_cond: rows conditioned on an attribute see its categories equally often; others keep the data mix."""
    import torch

    from backend.cells.train import Trainer

    rng = np.random.default_rng(0)
    counts = rng.poisson(2.0, size=(100, 12)).astype(np.float32)
    codes = np.array([0] * 90 + [1] * 10)[:, None]
    tr = Trainer(counts, codes, [2], {"ae_hidden": [8], "latent": 3, "balanced_cond": balanced, "flow_batch": 256},
                 seed=0)
    tr.encode_all()
    seen = {"cond": [], "uncond": []}
    flow = tr.flow

    class Recorder(torch.nn.Module):
        def forward(self, x, t, c, mask):
            on = mask[:, 0] > 0
            seen["cond"].append(c[on, 0])
            seen["uncond"].append(c[~on, 0])
            return flow(x, t, c, mask)

    tr.flow = Recorder()
    for _ in range(20):
        tr.flow_train_step()
    cond = torch.cat(seen["cond"]).float().mean().item()
    uncond = torch.cat(seen["uncond"]).float().mean().item()
    assert abs(uncond - 0.1) < 0.05
    assert abs(cond - (0.5 if balanced else 0.1)) < 0.05


# --- flow matching and guidance --------------------------------------------------------------------------


def test_flow_matching_target_identity():
    import torch

    from backend.cells.model import fm_pair

    g = torch.Generator().manual_seed(0)
    z1, eps, t = torch.randn(8, 5, generator=g), torch.randn(8, 5, generator=g), torch.rand(8, generator=g)
    sigma = 1e-4
    xt, ut = fm_pair(z1, t, eps, sigma)
    # u_t = (z1 - (1 - sigma) x_t) / (1 - (1 - sigma) t), algebraically z1 - (1 - sigma) eps
    direct = (z1 - (1 - sigma) * xt) / (1 - (1 - sigma) * t[:, None])
    assert torch.allclose(ut, direct, atol=1e-4)
    assert torch.allclose(fm_pair(z1, torch.ones(8), eps, sigma)[0], z1 + sigma * eps, atol=1e-6)


def test_guidance_shapes_and_limits():
    import torch

    from backend.cells.model import VelocityNet, guided_velocity

    torch.manual_seed(0)
    net = VelocityNet(6, [3, 2], hidden=16, emb=8, n_blocks=2)
    for p in net.parameters():  # non-zero everywhere so the attributes matter
        torch.nn.init.normal_(p, std=0.3)
    x, t = torch.randn(5, 6), torch.tensor(0.3)
    codes = torch.tensor([[0, 1], [1, 0], [2, 1], [0, 0], [1, 1]])
    v_unc = net(x, t, codes, torch.zeros(5, 2))
    v_c1 = net(x, t, codes, torch.tensor([[1.0, 0.0]] * 5))
    assert guided_velocity(net, x, t, codes, [None, None]).shape == (5, 6)
    assert torch.allclose(guided_velocity(net, x, t, codes, [0.0, None]), v_unc, atol=1e-6)
    assert torch.allclose(guided_velocity(net, x, t, codes, [1.0, None]), v_c1, atol=1e-6)
    two = guided_velocity(net, x, t, codes, [1.5, 0.5])
    v_c2 = net(x, t, codes, torch.tensor([[0.0, 1.0]] * 5))
    assert torch.allclose(two, v_unc + 1.5 * (v_c1 - v_unc) + 0.5 * (v_c2 - v_unc), atol=1e-5)
    assert not torch.allclose(v_c1, v_unc)
    # the sampler's precomputed field is the same function
    from backend.cells.model import GuidedField

    for w in ([None, None], [0.0, None], [1.0, None], [1.5, 0.5], [None, 2.0]):
        assert torch.allclose(GuidedField(net, codes, w, 5)(x, 0.3), guided_velocity(net, x, t, codes, w), atol=1e-5)


def test_generate_counts_conditions_and_errors(model):
    gen = model.generate(n=40, conditions={"cell_type": "CD14+ Monocyte", "phase": "G2M"}, guidance={"phase": 2.0},
                         seed=0, steps=8)
    x = gen.X.toarray()
    assert gen.shape == (40, len(model.var_names)) and list(gen.var_names) == list(model.var_names)
    assert x.min() >= 0 and np.all(x == np.rint(x)) and x.sum() > 0
    assert set(gen.obs["cell_type"]) == {"CD14+ Monocyte"} and set(gen.obs["phase"]) == {"G2M"}
    again = model.generate(n=40, conditions={"cell_type": "CD14+ Monocyte", "phase": "G2M"}, guidance={"phase": 2.0},
                           seed=0, steps=8)
    assert (again.X != gen.X).nnz == 0, "same seed, same cells"
    table = pd.DataFrame({"cell_type": ["CD19+ B"] * 3 + ["Dendritic"] * 2})
    assert list(model.generate(5, conditions=table, seed=1, steps=4).obs["cell_type"]) == list(table["cell_type"])
    assert model.generate(6, conditions=None, seed=0, steps=4).shape[0] == 6
    with pytest.raises(ValueError, match="Unknown cell_type"):
        model.generate(5, conditions={"cell_type": "Neuron"})
    with pytest.raises(ValueError, match="cannot condition"):
        model.generate(5, conditions={"tissue": "blood"})
    with pytest.raises(ValueError, match="rows"):
        model.generate(4, conditions=table)


# --- metrics ---------------------------------------------------------------------------------------------


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
    assert set(res["per_type"]["type"]) == {"CD19+ B", "CD56+ NK"}
    assert np.allclose(res["per_type"]["centroid_offset"], 0, atol=1e-6) and res["spread_ratio"] == pytest.approx(1)
    other = real[real.obs["cell_type"] == "Dendritic"][:126].copy()
    other.obs["cell_type"] = sub.obs["cell_type"].to_numpy()
    assert evaluate(sub, other, by="cell_type")["w2"] > 1.0


def test_reference_cells_counts_repeats_and_cap():
    from backend.cells.metrics import reference_cells

    t = _toy(30, 5, seed=4, types=("a", "b"))
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

    x = _toy(80, 20, seed=1).X
    space = PCASpace(x, n_pcs=5)
    assert np.allclose(space.project(x), space.real, atol=1e-4)
    assert np.allclose(space.real.mean(0), 0, atol=1e-4)


def test_nb_baseline_moments():
    from backend.cells.metrics import NBBaseline

    t = _toy(2000, 10, seed=2, types=("a",))
    nb = NBBaseline(t.X, t.obs["cell_type"])
    x = nb.sample(["a"] * 4000, seed=0)
    real = t.X.toarray()
    assert np.allclose(x.mean(0), real.mean(0), rtol=0.1, atol=0.05)
    assert np.allclose(x.var(0), real.var(0), rtol=0.25, atol=0.2)


# --- the shipped model ----------------------------------------------------------------------------------


def test_shipped_card_beats_baseline(model):
    card = model.card
    m, b = card["metrics"], card["baselines"]
    # RBF-MMD over all cell types, and W2 over the types with >= 20 held-out cells (see the card's `why`)
    assert m["rbf_mmd"] < b["nb_rbf_mmd"], (m["rbf_mmd"], b["nb_rbf_mmd"])
    assert m["w2_types_ge20"] < b["nb_w2_types_ge20"], (m["w2_types_ge20"], b["nb_w2_types_ge20"])
    assert card["headline"]["value"] == m["rbf_mmd"] and card["headline"]["baseline"] == b["nb_rbf_mmd"]
    assert card["n_eval"] >= 150 and card["command"].startswith("python -m backend.train cells-pbmc68k")
    # the guidance weight was chosen on a validation split carved from the training cells, not on the test cells
    val = card["validation"]
    assert val["n_fit"] + val["n_val"] == card["n_train"] and val["guidance"] in [r["guidance"] for r in val["rows"]]
    # per-type inverse dispersions (CFGen's covariate_specific_theta) ship with the model
    assert tuple(model.log_theta_type.shape) == (len(model.categories["cell_type"]), model.n_genes)


@pytest.mark.slow
def test_shipped_model_beats_baseline_live(model, real):
    """Re-measure on the held-out cells (one generation seed) rather than trusting the card."""
    from backend.cells.explore import split_real
    from backend.cells.metrics import compare_to_baseline

    train, test = split_real(model, real)
    assert not set(train.obs_names) & set(test.obs_names)
    g = (model.card.get("validation") or {}).get("guidance", 1.5)  # the weight chosen on validation
    comp = compare_to_baseline(model, train, test, replicates=(0,), guidance={"cell_type": g})
    assert comp["cfgen"]["rbf_mmd"] < comp["baseline"]["rbf_mmd"]
    assert comp["cfgen"]["w2_large"] < comp["baseline"]["w2_large"]


def test_knn_placement_of_real_cells_lands_on_them(model, real):
    from backend.cells.explore import reference

    emb = reference(model, real)
    pos = emb.place(real.X[:50], how="knn")
    assert pos.shape == (50, 2)
    span = emb.coords.max(0) - emb.coords.min(0)
    assert np.median(np.linalg.norm(pos - emb.coords[:50], axis=1)) < 0.1 * span.max()


# --- fit on uploads --------------------------------------------------------------------------------------


@pytest.mark.slow
def test_fit_small_synthetic_within_budget():
    import time

    from backend.core.progress import Cancelled

    toy = _toy(300, 40)
    t = time.time()
    steps = []
    m = fit(toy, condition_keys=["cell_type"], max_seconds=8, seed=0, progress=lambda s, n, msg: steps.append(s))
    took = time.time() - t
    assert took < 8 + 12, took  # the budget, plus first-call overhead (optimizer imports) on a loaded machine
    assert m.train_info["ae_steps"] > 0 and m.train_info["flow_steps"] > 0 and m.train_info["n_test"] == 30
    assert steps and steps[-1] == 1000
    gen = m.generate(20, conditions={"cell_type": "a"}, seed=0, steps=5)
    assert gen.shape == (20, 40) and np.all(gen.X.data == np.rint(gen.X.data))
    from backend.cells import load_model_bytes

    m2 = load_model_bytes(m.to_bytes())
    assert (m2.generate(5, seed=0, steps=3).X != m.generate(5, seed=0, steps=3).X).nnz == 0
    with pytest.raises(Cancelled):
        fit(toy, condition_keys=["cell_type"], max_seconds=30, progress=lambda s, n, msg: s > 0)
    with pytest.raises(ValueError, match="time budget"):
        fit(toy, max_seconds=0)


# --- upload validation -----------------------------------------------------------------------------------


def test_good_upload_and_layer_counts():
    toy = _toy(60, 12)
    toy.layers["counts"] = toy.X.copy()
    toy.X = sp.csr_matrix(np.log1p(toy.X.toarray()))
    adata, cols = read_h5ad_counts(_h5ad_bytes(toy))
    assert cols == ["cell_type"] and adata.n_obs == 60


@pytest.mark.parametrize("case, message", [
    ("float", "non-integer"), ("negative", "negative"), ("nan", "NaN"), ("nocols", "No obs column"),
    ("nocells", "no cells"), ("text", "not an .h5ad"),
])
def test_bad_uploads(case, message):
    import anndata as ad

    toy = _toy(30, 8)
    x = toy.X.toarray()
    if case == "float":
        toy.X = sp.csr_matrix(np.log1p(x))
    elif case == "negative":
        x[0, 0] = -2
        toy.X = x
    elif case == "nan":
        x[1, 1] = np.nan
        toy.X = x
    elif case == "nocols":
        toy.obs = pd.DataFrame({"id": [f"c{i}" for i in range(30)]}, index=toy.obs_names)
    elif case == "nocells":
        toy = ad.AnnData(X=np.zeros((0, 8), np.float32))
    raw = b"cell,gene\n1,2\n" if case == "text" else _h5ad_bytes(toy)
    with pytest.raises(ValueError, match=message):
        read_h5ad_counts(io.BytesIO(raw))


def test_prepare_rejects_bad_columns():
    from backend.cells.data import prepare_counts

    toy = _toy(30, 8)
    toy.obs["id"] = [f"x{i}" for i in range(30)]
    with pytest.raises(ValueError, match="not in the dataset"):
        prepare_counts(toy, ["tissue"])
    toy.obs["one"] = "same"
    with pytest.raises(ValueError, match="cannot be an attribute"):
        prepare_counts(toy, ["one"])


# --- selections ------------------------------------------------------------------------------------------


def test_selection_ids_and_composition():
    from backend.cells.explore import composition, ids_from_points

    pts = [{"customdata": [3], "curve_number": 1}, {"customdata": [1]}, {"x": 1}, {"customdata": ["7"]}]
    assert ids_from_points(pts) == [1, 3, 7]
    assert ids_from_points(None) == []
    t = pd.DataFrame({"row_id": range(5), "source": ["real", "real", "generated", "generated", "real"],
                      "cell_type": ["a", "b", "a", "a", "a"]})
    c = composition(t, [0, 2, 3, 4], "cell_type")
    assert c.set_index("cell_type").loc["a"].tolist() == [2, 2]


def test_backend_does_not_import_streamlit():
    code = "import backend.cells, backend.cells.explore, backend.cells.train, sys; print('streamlit' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=os.getcwd(), timeout=120)
    assert out.stdout.strip().endswith("False"), out.stderr[-500:]
