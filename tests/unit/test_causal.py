"""Unit tests of the Causal page back end: SCM, renderer, metrics, discovery, the shipped learners."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from backend.causal import (
    counterfactual,
    cpdag,
    default_adjacency,
    descendants,
    edge_list,
    from_edge_list,
    make_scm,
    mcc,
    render,
    run_pipeline,
    shd,
    template,
    to_dot,
    validate_adjacency,
)
from tests.conftest import ROOT

CHAIN = np.array([[0, 1, 0], [0, 0, 1], [0, 0, 0]])
COLLIDER = np.array([[0, 0, 1], [0, 0, 1], [0, 0, 0]])


# ---------------------------------------------------------------- SCM


def test_sampling_is_seeded_and_shaped():
    scm = make_scm(template("random", 5, seed=3), "linear", seed=0)
    a, b = scm.sample(100, seed=1), scm.sample(100, seed=1)
    assert a.shape == (100, 5) and np.array_equal(a, b)
    assert not np.array_equal(a, scm.sample(100, seed=2))


def test_intervention_cuts_incoming_edges():
    scm = make_scm(CHAIN, "linear", seed=0)
    z = scm.sample(4000, seed=0, intervene={1: 2.0})
    assert np.allclose(z[:, 1], 2.0)
    # Z1 is a cause of Z2 only observationally: after do(Z2) they are uncorrelated
    assert abs(np.corrcoef(z[:, 0], scm.sample(4000, seed=0, intervene={1: np.linspace(-1, 1, 4000)})[:, 1])[0, 1]) < 0.05
    obs = scm.sample(4000, seed=0)
    assert abs(np.corrcoef(obs[:, 0], obs[:, 1])[0, 1]) > 0.3
    # the child of the intervened node follows its mechanism from the new value
    assert np.allclose(z[:, 2] - scm.weights[1, 2] * 2.0, obs[:, 2] - scm.weights[1, 2] * obs[:, 1])


@pytest.mark.parametrize("kind", ["linear", "nonlinear"])
def test_pairs_share_noise(kind):
    a = template("random", 5, seed=3)
    scm = make_scm(a, kind, seed=0)
    p = scm.pairs(3000, seed=0)
    desc = descendants(a)
    assert set(np.unique(p["target"])) == {-1, 0, 1, 2, 3, 4}
    none = p["target"] == -1
    assert np.allclose(p["z"][none], p["z_tilde"][none])
    for i in range(5):
        hit = p["target"] == i
        changed = np.abs(p["z_tilde"][hit] - p["z"][hit]) > 1e-9
        keep = ~desc[i]
        keep[i] = False
        assert not changed[:, keep].any(), "non-descendants must not move"
        assert changed[:, i].all()
        # the noise is shared except on the target
        other = np.arange(5) != i
        assert np.allclose(p["eps"][hit][:, other], p["eps_tilde"][hit][:, other])
    # eps_tilde reproduces z_tilde under the observational mechanisms
    assert np.allclose(scm.solve(p["eps_tilde"]), p["z_tilde"])


@pytest.mark.parametrize("bad, msg", [
    (np.array([[0, 1], [1, 0]]), "cycle"),
    (np.array([[1, 0], [0, 0]]), "Self-loop"),
    (np.array([[0]]), "at least 2"),
    (np.zeros((9, 9), int), "At most 8"),
    (np.array([[0, 2], [0, 0]]), "only contain 0"),
    (np.zeros((2, 3)), "square"),
])
def test_bad_graphs_raise_clear_errors(bad, msg):
    with pytest.raises(ValueError, match=msg):
        validate_adjacency(bad)


def test_bad_pipeline_inputs():
    with pytest.raises(ValueError, match="alpha"):
        run_pipeline(CHAIN, learner="oracle", alpha=1.5, n_pairs=100)
    with pytest.raises(ValueError, match="at least 10 pairs"):
        run_pipeline(CHAIN, learner="oracle", n_pairs=0)
    with pytest.raises(ValueError, match="cycle"):
        run_pipeline(np.array([[0, 1], [1, 0]]), n_pairs=10, max_seconds=5)
    with pytest.raises(ValueError, match="at least 1"):
        make_scm(CHAIN).sample(0)


def test_templates():
    assert template("chain", 4).sum() == 3 and template("fork", 4)[0].sum() == 3
    assert template("collider", 4)[:, -1].sum() == 3 and template("diamond", 4).sum() == 4
    for s in range(5):
        validate_adjacency(template("random", 8, seed=s))
    assert default_adjacency().shape == (5, 5)


def test_counterfactual_moves_only_the_target_and_its_descendants():
    a = default_adjacency()
    cf = counterfactual(a, "linear", variable=0, value_sd=2.0, n=4)
    scm = make_scm(a, "linear", seed=0)
    assert cf.before.shape == cf.after.shape == (4, 5) and cf.images_before.shape == (4, 32, 32, 3)
    assert np.allclose(cf.after[:, 0], 2.0 * scm.scale[0])
    desc = descendants(a)[0]
    assert cf.changed[:, 0].all() and cf.changed[:, desc].all() and not cf.changed[:, ~desc & (np.arange(5) != 0)].any()
    assert cf.moved == [f"Z{j + 1}" for j in np.flatnonzero(desc)]
    assert cf.strip_before.shape == (96, 4 * 96 + 3 * 4, 3) and cf.strip_before.dtype == np.uint8
    np.testing.assert_array_equal(cf.before, scm.sample(4, seed=5))  # the same samples as the SCM draws
    with pytest.raises(ValueError, match="graph has 5 variables"):
        counterfactual(a, variable=7)


def test_edge_labels_round_trip_and_dot_colours_against_truth():
    a = default_adjacency()
    assert np.array_equal(from_edge_list(5, edge_list(a)), a)
    assert from_edge_list(3, ["Z1→Z2", "Z1→Z9"]).sum() == 1
    rev = CHAIN.T.copy()
    dot = to_dot(rev, truth=CHAIN)
    assert dot.count("darkorange") == 2 and "forestgreen" not in dot
    assert '"Z1" -> "Z2" [label="+1.50"]' in to_dot(CHAIN, weights=np.full((3, 3), 1.5))


# ---------------------------------------------------------------- renderer


def test_each_variable_moves_its_factor():
    scm = make_scm(np.zeros((8, 8), int), "linear", seed=0)
    base = np.zeros((1, 8))
    img0 = render(base, scm.scale)
    assert img0.shape == (1, 32, 32, 3) and img0.dtype == np.uint8
    for i in range(8):
        z = base.copy()
        z[0, i] = 2.0
        diff = np.abs(render(z, scm.scale).astype(int) - img0.astype(int))
        assert diff.max() > 20, f"variable {i} does not change the image"
    # object x moves the object's centre of mass to the right
    lo, hi = base.copy(), base.copy()
    lo[0, 0], hi[0, 0] = -2, 2
    def cx(img):
        m = np.abs(img[0].astype(int) - render(np.full((1, 8), 0.0), scm.scale)[0].astype(int)).sum(-1)
        return (m * np.arange(32)[None]).sum() / max(m.sum(), 1)
    assert cx(render(hi, scm.scale)) > 16 > cx(render(lo, scm.scale))


# ---------------------------------------------------------------- metrics


def test_shd_hand_made():
    t = CHAIN
    assert shd(t, t) == 0
    assert shd(t, np.zeros_like(t)) == 2
    rev = np.array([[0, 0, 0], [1, 0, 1], [0, 0, 0]])  # 1 -> 0, 1 -> 2: one reversal
    assert shd(t, rev) == 1
    und = np.array([[0, 1, 0], [1, 0, 1], [0, 1, 0]])  # undirected chain: two edges differ in marks
    assert shd(t, und) == 2
    assert shd(t, np.array([[0, 1, 1], [0, 0, 1], [0, 0, 0]])) == 1  # one extra


def test_shd_matches_causallearn_and_gadjid():
    import gadjid
    from causallearn.graph.SHD import SHD

    from backend.causal.metrics import to_general_graph as _to_general_graph

    rng = np.random.default_rng(0)
    for _ in range(10):
        t = template("random", 5, seed=int(rng.integers(1000)))
        e = template("random", 5, seed=int(rng.integers(1000)))
        assert shd(t, e) == SHD(_to_general_graph(t), _to_general_graph(e)).get_shd()
        assert shd(t, e) == gadjid.shd(t.astype(np.int8), e.astype(np.int8))[1]


def test_cpdag_of_chain_and_collider():
    assert np.array_equal(cpdag(CHAIN), np.array([[0, 1, 0], [1, 0, 1], [0, 1, 0]]))
    assert np.array_equal(cpdag(COLLIDER), COLLIDER)


def test_mcc_hand_made():
    rng = np.random.default_rng(0)
    z = rng.standard_normal((1000, 4))
    codes = z[:, [2, 0, 3, 1]] * np.array([3.0, -1.0, 0.5, 2.0]) + 1
    m, perm = mcc(codes, z)
    assert m == pytest.approx(1.0) and list(perm) == [1, 3, 0, 2]
    q, _ = np.linalg.qr(rng.standard_normal((4, 4)))
    assert mcc(z @ q, z)[0] < 0.9
    assert mcc(rng.standard_normal((1000, 4)), z)[0] < 0.15


def test_dci_hand_made():
    from backend.causal import dci

    rng = np.random.default_rng(0)
    z = rng.standard_normal((1500, 3))
    good = dci(z[:, [1, 2, 0]] * 2, z)
    assert good["disentanglement"] > 0.9 and good["completeness"] > 0.9 and good["informativeness"] > 0.9
    q, _ = np.linalg.qr(rng.standard_normal((3, 3)))
    mixed = dci(z @ q, z)
    assert mixed["disentanglement"] < good["disentanglement"] - 0.3
    assert np.asarray(mixed["importance"]).shape == (3, 3)


# ---------------------------------------------------------------- pipeline


@pytest.mark.parametrize("adj", [CHAIN, COLLIDER], ids=["chain", "collider"])
def test_oracle_recovers_chain_and_collider(adj):
    r = run_pipeline(adj, learner="oracle", method="pc", n_pairs=3000, use_interventions=True, with_dci=False)
    assert r.mcc == pytest.approx(1.0)
    assert r.shd == 0 and r.oracle_shd == 0
    r = run_pipeline(adj, learner="oracle", method="ges", n_pairs=3000, with_dci=False)
    assert r.shd_cpdag == 0  # without interventions, the CPDAG is recovered


def test_shipped_learner_mcc_on_fresh_data():
    """Each shipped learner reproduces its card's held-out MCC on other fresh samples (within 0.05)."""
    from backend.causal import representation
    from backend.core import read_card

    for learner in ("dcrl", "vae"):
        codes, z = representation(learner, n=1500, seed=123)
        assert codes.shape == z.shape == (1500, 5)
        assert mcc(codes, z)[0] == pytest.approx(read_card(f"causal-{learner}")["metrics"]["mcc"], abs=0.05), learner
    codes, z = representation("oracle", n=10, seed=0)
    assert np.array_equal(codes, z)


@pytest.mark.slow
def test_default_pipeline_with_shipped_learner():
    from backend.core import read_card

    r = run_pipeline(None, learner="dcrl", n_pairs=2000, use_interventions=True, with_dci=False)
    assert r.shipped and r.estimated.shape == (5, 5)
    card = read_card("causal-dcrl")["metrics"]  # the issue's targets (MCC >= 0.9, SHD <= oracle + 2) are on the card
    assert r.mcc == pytest.approx(card["mcc"], abs=0.05) and r.shd <= card["shd"] + 2


@pytest.mark.slow
def test_in_app_training_runs_briefly_and_can_be_cancelled():
    from backend.core import Cancelled

    r = run_pipeline(CHAIN, learner="vae", n_pairs=200, max_seconds=3, with_dci=False)
    assert r.estimated.shape == (3, 3) and not r.shipped and 0 <= r.mcc <= 1
    with pytest.raises(Cancelled):
        run_pipeline(COLLIDER, learner="dcrl", n_pairs=200, max_seconds=30, progress=lambda *a: True)


@pytest.mark.slow
# ---------------------------------------------------------------- the ILCM objective


def _fixed_solution_learner():
    """A 2-variable learner whose solution functions are s_i(e_i; e_rest) = 0.5 + 2 e_i (last layer: bias only)."""
    import math

    import torch

    from backend.causal.model import Learner

    torch.manual_seed(0)
    model = Learner(2, 4, "gaussian", "vector", width=16)
    last = model.solution[-1]
    with torch.no_grad():
        last.weight.zero_()
        last.bias.copy_(torch.tensor([0.5, math.log(2.0)]))
    return model


def test_prior_log_density_hand_computed():
    """log p(e, e~ | I={1}) = log N(e_0) + log N(e_1) + log N(s_1(e~_1)) + log |ds_1/de~_1|, s_1 = 0.5 + 2 e~_1."""
    import torch

    model = _fixed_solution_learner()
    e1, e2 = torch.tensor([[0.3, -1.0]]), torch.tensor([[0.3, 0.7]])
    log_n = lambda v: -0.5 * v * v - 0.5 * np.log(2 * np.pi)  # noqa: E731
    hand = log_n(0.3) + log_n(-1.0) + log_n(0.5 + 2 * 0.7) + np.log(2.0)
    assert model.log_prior(e1, e2, 1).item() == pytest.approx(hand, abs=1e-5)
    assert model.log_prior(e1, e2, -1).item() == pytest.approx(log_n(0.3) + log_n(-1.0), abs=1e-5)


def test_solution_functions_get_gradients_through_the_elbo():
    """The solution network is trained by the ELBO itself (no separate detached fit): its gradient is non-zero,
    and so is the encoder's gradient from the prior term alone (recon and q(I) terms removed)."""
    import torch

    from backend.causal.model import Learner

    torch.manual_seed(0)
    model = Learner(3, 6, "diffusion", "vector", width=16)
    x1, x2 = torch.randn(32, 6), torch.randn(32, 6)
    model.loss(x1, x2, beta=1.0)[0].backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in model.solution.parameters())
    model.zero_grad()
    mu1, _ = model.encode(x1)
    mu2, _ = model.encode(x2)
    model.intervened_log_prior(mu1, mu2).sum().backward()
    assert model.encoder[0].weight.grad.abs().sum() > 0


def test_sparsity_flag_off_changes_nothing():
    """sparsity=0 (the shipped setting) gives the plain ELBO: the same loss and gradients as leaving it out,
    and a positive weight adds exactly weight x off-target change."""
    import torch

    from backend.causal.model import Learner

    torch.manual_seed(0)
    model = Learner(3, 6, "gaussian", "vector", width=16)
    x1, x2 = torch.randn(16, 6), torch.randn(16, 6)
    out = {}
    for key, kw in (("default", {}), ("off", {"sparsity": 0.0}), ("on", {"sparsity": 3.0})):
        torch.manual_seed(1)
        model.zero_grad()
        total, info = model.loss(x1, x2, **kw)
        total.backward()
        out[key] = (total.item(), model.encoder[0].weight.grad.clone(), info["off_target"])
    assert out["default"][0] == out["off"][0] and torch.equal(out["default"][1], out["off"][1])
    assert out["on"][0] == pytest.approx(out["off"][0] + 3.0 * out["off"][2], rel=1e-5)
    assert not torch.equal(out["on"][1], out["off"][1])


def test_smoke_recipe_trains_writes_and_loads(tmp_path, monkeypatch):
    """The recipe's smoke overrides train 20 steps and evaluate in seconds; the public loader reads the file."""
    from backend.causal import load_learner
    from backend.causal.train import RECIPES
    from backend.core import registry
    from backend.core.cards import validate_card_file
    from backend.core.training import train

    monkeypatch.setattr(registry, "CHECKPOINT_DIR", tmp_path)
    recipe = RECIPES["causal-dcrl"](**RECIPES["causal-dcrl"].smoke)
    card = train(recipe, steps=20, device="cpu", seed=0)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["causal-dcrl.json", "causal-dcrl.pt"]
    assert card["steps"] == 20 and 0 <= card["metrics"]["mcc"] <= 1 and card["headline"]["baseline_label"] == "PCA"
    assert any("Ablation flag" in t for t in card["limitations"]) and card["config"]["sparsity"] == 0
    (tmp_path / "causal-dcrl.md").write_text("# smoke\n")
    validate_card_file(tmp_path / "causal-dcrl.json")
    model, config, _ = load_learner("dcrl", directory=tmp_path)
    assert config["d"] == 5 and model.decoder_kind == "diffusion"


def test_shipped_cards_name_the_additions_beyond_the_paper():
    from backend.core import read_card

    for name in ("causal-dcrl", "causal-vae"):
        card = read_card(name)
        assert card["metrics"]["mcc"] == card["headline"]["value"]
        assert any("Ablation flag" in t and "paper" in t for t in card["limitations"]), name
        assert card["config"]["sparsity"] == 0 and "recon_weight" not in card["config"], name


def test_importing_causal_does_not_load_torch():
    code = "import sys; import backend.causal; assert 'torch' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], cwd=ROOT, check=True)


def test_sweep_picks_alpha_on_validation_and_summarises_held_out():
    """Each graph's alpha comes from its validation SHD only; the summary is over the held-out figures."""
    from backend.causal.sweep import ALPHAS, graph_row, summary

    def scores(shd, oracle, mcc):
        return {"mcc": mcc, **{f"shd@{a}": s for a, s in zip(ALPHAS, shd)},
                **{f"oracle_shd@{a}": o for a, o in zip(ALPHAS, oracle)}}

    run = {"graph_seed": 1, "val": scores([3, 1, 2], [0, 0, 0], 0.9), "test": scores([0, 4, 5], [0, 1, 1], 0.8)}
    row = graph_row(run)
    assert row == {"graph_seed": 1, "alpha": ALPHAS[1], "mcc": 0.8, "shd": 4, "oracle_shd": 1}
    s = summary([row, {"graph_seed": 3, "alpha": 0.01, "mcc": 1.0, "shd": 1, "oracle_shd": 1}])
    assert s["mcc_mean"] == pytest.approx(0.9) and s["mcc_worst"] == 0.8 and s["shd_excess_worst"] == 3
