"""Cells stages: NB likelihood and sampler, per-type dispersions, flow matching and guidance, generation."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

from tests.unit.cells_toy import model, real  # noqa: F401 (fixtures)


def test_nb_log_prob_matches_scipy():
    import torch
    from scipy import stats

    from backend.cells.autoencoder import nb_log_prob

    x = np.array([0, 1, 3, 10, 50], dtype=np.float64)
    mu, theta = 4.0, 1.7
    ours = nb_log_prob(torch.tensor(x), torch.tensor(mu, dtype=torch.float64), torch.tensor(theta,
                       dtype=torch.float64)).numpy()
    ref = stats.nbinom.logpmf(x, theta, theta / (theta + mu))
    assert np.allclose(ours, ref, atol=1e-5)


def test_nb_sampling_integers_mean_variance():
    from backend.cells.autoencoder import sample_nb

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

    from backend.cells.autoencoder import nb_csr, sample_nb_dense

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


def test_dispersion_phase_keeps_empty_types_and_bounds():
    """The per-type dispersion loss moves only types with cells and never below the smallest shared theta."""
    import torch

    from backend.cells.stages import CFGenModule, decoder_means, dispersion_bounds, dispersion_loss
    from backend.cells.train import CONFIG

    torch.manual_seed(0)
    m = CFGenModule(8, [3], {**CONFIG, "ae_hidden": [16], "latent": 3}, n_types=3)
    with torch.no_grad():
        m.ae.log_theta = torch.linspace(-1.0, 2.0, 8)
        m.log_theta_type.copy_(m.ae.log_theta.expand(3, 8))
    counts = torch.poisson(torch.full((40, 8), 3.0))
    counts[:20, 0] = 0  # a gene never seen in type 0: unbounded ML would send its theta to 0
    types, bounds = torch.tensor([0] * 20 + [2] * 20), dispersion_bounds(m)
    mu = decoder_means(m, counts)
    opt = torch.optim.Adam([m.log_theta_type], lr=0.05)
    for _ in range(200):
        opt.zero_grad()
        dispersion_loss(m, counts, mu, types, bounds).backward()
        opt.step()
    out = m.log_theta_type.detach().clamp(*bounds)
    assert torch.equal(out[1], m.ae.log_theta.detach()), "a type without cells keeps the shared theta"
    assert not torch.equal(out[0], m.ae.log_theta.detach())
    assert out.min() >= -1.0 - 1e-6, "no theta below the smallest shared one"
    # the module round-trips through the checkpoint format CellsModel reads
    payload = {**m.to_payload(), "var_names": [f"g{j}" for j in range(8)], "condition_keys": ["t"],
               "categories": {"t": ["a", "b", "c"]}}
    again = CFGenModule.from_payload(payload, {**CONFIG, "ae_hidden": [16], "latent": 3})
    assert torch.allclose(again.ae.log_theta, m.ae.log_theta)


@pytest.mark.parametrize("balanced", [False, True])
def test_flow_conditioned_rows_class_balanced(balanced):
    """balanced_cond: rows conditioned on an attribute see its categories equally often; others keep the data mix."""
    import torch

    from backend.cells.stages import CellPool, flow_batch

    rng = np.random.default_rng(0)
    pool = CellPool(rng.poisson(2.0, size=(100, 12)).astype(np.float32), np.array([0] * 90 + [1] * 10)[:, None], [2])
    pool.z = torch.randn(100, 3)
    gen = torch.Generator().manual_seed(0)
    cond, uncond = [], []
    for _ in range(20):
        z1, t, eps, codes, mask = flow_batch(pool, 256, gen, p_cond=0.8, balanced=balanced)
        on = mask[:, 0] > 0
        cond.append(codes[on, 0])
        uncond.append(codes[~on, 0])
        assert z1.shape == eps.shape == (100, 3) and t.min() >= 0 and t.max() < 1
    assert abs(torch.cat(uncond).float().mean().item() - 0.1) < 0.05
    assert abs(torch.cat(cond).float().mean().item() - (0.5 if balanced else 0.1)) < 0.05


def test_flow_matching_target_identity():
    import torch

    from backend.cells.flow import fm_pair

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

    from backend.cells.flow import VelocityNet, guided_velocity

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
    from backend.cells.flow import GuidedField

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
