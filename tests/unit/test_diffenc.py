"""DiffEnc/VDM maths on tiny untrained networks: the encoder at initialisation, the loss terms against their
formulas (identity encoder = VDM exactly, y = 0, the Girsanov form with a finite-difference derivative),
common random numbers, bpd shapes, the sampler, the data and baselines."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn as nn

from backend.diffenc.data import categorical_bpd, downsample, to_digit, zlib_bpd
from backend.diffenc.metrics import bpd_terms, crn_draws
from backend.diffenc.model import (
    GAMMA_MAX,
    GAMMA_MIN,
    GAMMA_PRIME,
    DiffusionModel,
    diffusion_terms,
    gamma_of,
    sample,
    to_unit,
)


def _pair(seed: int = 0):
    """A tiny VDM and a tiny DiffEnc sharing the same score network weights."""
    torch.manual_seed(seed)
    de = DiffusionModel(8, 1, enc_ch=8, enc_layers=1).double()
    vdm = DiffusionModel(8, 1).double()
    vdm.score.load_state_dict(de.score.state_dict())
    return vdm, de


def _batch(n=6, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = to_unit(torch.randint(0, 256, (n, 1, 14, 14), generator=g)).double()
    return x, torch.rand(n, generator=g).double(), torch.randn((n, 1, 14, 14), generator=g).double()


class _Fn(nn.Module):
    def __init__(self, fn):
        super().__init__()
        self.fn = fn

    def forward(self, x, g):
        return self.fn(x, g)


def test_encoder_at_initialisation_is_alpha_squared_x():
    _, de = _pair()
    x, t, _ = _batch()
    g = gamma_of(t)
    x_phi, y = de.encode(x, g)
    assert torch.all(y == 0), "the zero-initialised output conv makes y = tanh(0) = 0"
    assert torch.allclose(x_phi, torch.sigmoid(-g)[:, None, None, None] * x, atol=1e-12)
    assert not torch.allclose(x_phi, x), "alpha_t^2 x differs from x"


def test_identity_encoder_gives_vdm_loss_exactly():
    vdm, de = _pair()
    de.encoder = _Fn(lambda x, g: x)  # y = x: x_phi = x and dy/dgamma = 0
    x, t, eps = _batch()
    a, b = diffusion_terms(vdm, x, t, eps), diffusion_terms(de, x, t, eps)
    for k in ("diffusion", "latent", "recon"):
        assert torch.allclose(a[k], b[k], rtol=0, atol=1e-10), k


def test_vdm_terms_match_their_formulas():
    vdm, _ = _pair()
    x, t, eps = _batch()
    g = gamma_of(t)
    a2 = torch.sigmoid(-g)[:, None, None, None]
    z = a2.sqrt() * x + (1 - a2).sqrt() * eps
    v = a2.sqrt() * eps - (1 - a2).sqrt() * x
    want = 0.5 * GAMMA_PRIME * a2[:, 0, 0, 0] * ((v - vdm.score(z, g)) ** 2).sum((1, 2, 3))
    terms = diffusion_terms(vdm, x, t, eps)
    assert torch.allclose(terms["diffusion"], want, atol=1e-10)
    a1 = 1 / (1 + math.exp(GAMMA_MAX))
    kl = 0.5 * ((1 - a1) + a1 * x ** 2 - 1 - math.log(1 - a1)).sum((1, 2, 3))
    assert torch.allclose(terms["latent"], kl, atol=1e-10)
    assert torch.all(terms["recon"] >= 0)
    assert float(terms["recon"].mean()) / 196 < 0.02, "gamma_0 = -13.3: a pixel decodes to its level almost surely"


def test_zero_y_gives_the_trivial_encoder_loss():
    """y = 0: x_t = alpha^2 x, dx_t/dgamma = -sigma^2 alpha^2 x, so the integrand is
    1/2 gamma' alpha^2 || v - v_hat - sigma alpha^2 x ||^2 with v = alpha eps - sigma alpha^2 x."""
    _, de = _pair()
    x, t, eps = _batch()
    g = gamma_of(t)
    a2 = torch.sigmoid(-g)[:, None, None, None]
    a, s = a2.sqrt(), (1 - a2).sqrt()
    xt = a2 * x
    z, v = a * xt + s * eps, a * eps - s * xt
    want = 0.5 * GAMMA_PRIME * a2[:, 0, 0, 0] * ((v - de.score(z, g) - s * a2 * x) ** 2).sum((1, 2, 3))
    assert torch.allclose(diffusion_terms(de, x, t, eps)["diffusion"], want, atol=1e-10)


def test_diffusion_integrand_is_the_girsanov_form_with_a_numerical_derivative():
    """1/2 gamma' e^{-gamma} ||a - a_hat||^2 with a = x_t - dx_t/dgamma (central difference), a non-trivial y."""
    _, de = _pair(1)
    nn.init.normal_(de.encoder.out.weight, std=0.3)
    x, t, eps = _batch(4, 1)
    g = gamma_of(t)
    h = 1e-5
    x_t = de.encode(x, g)[0]
    dxdg = (de.encode(x, g + h)[0] - de.encode(x, g - h)[0]) / (2 * h)
    a2 = torch.sigmoid(-g)[:, None, None, None]
    z = a2.sqrt() * x_t + (1 - a2).sqrt() * eps
    a_hat = a2.sqrt() * z - (1 - a2).sqrt() * de.score(z, g)
    want = 0.5 * GAMMA_PRIME * torch.exp(-g) * ((x_t - dxdg - a_hat) ** 2).sum((1, 2, 3))
    got = diffusion_terms(de, x, t, eps)["diffusion"]
    assert torch.allclose(got, want, rtol=1e-6), (got, want)
    assert not torch.allclose(de.encode(x, g)[1], torch.zeros_like(x)), "y is not zero here"


def test_bpd_shapes_terms_and_common_random_numbers():
    vdm, de = _pair()
    imgs = np.random.default_rng(0).integers(0, 256, (5, 14, 14)).astype(np.uint8)
    with torch.no_grad():
        a = bpd_terms(vdm.float(), imgs, repeats=3, seed=7, chunk=2)
        b = bpd_terms(de.float(), imgs, repeats=3, seed=7)
    for r in (a, b):
        assert r["bpd"].shape == (5,) and r["bpd_draws"].shape == (3, 5)
        assert np.allclose(r["bpd"], r["diffusion"] + r["latent"] + r["recon"])
    (t1, e1), (t2, e2) = crn_draws(5, 2, 7)[1], crn_draws(5, 2, 7)[1]
    assert torch.equal(t1, t2) and torch.equal(e1, e2)
    assert torch.equal(crn_draws(3, 1, 7)[0][0], crn_draws(3, 1, 7)[0][0])
    assert not torch.equal(crn_draws(5, 1, 7)[0][0], crn_draws(5, 1, 8)[0][0])
    with pytest.raises(ValueError, match="14, 14"):
        bpd_terms(vdm, imgs[0], 1, 0)


def test_schedule_and_sampler():
    assert gamma_of(0.0) == GAMMA_MIN and gamma_of(1.0) == GAMMA_MAX
    _, de = _pair()
    imgs, snaps = sample(de.float(), 3, 6, torch.Generator().manual_seed(0), trajectory_every=2)
    assert imgs.shape == (3, 14, 14) and imgs.dtype == np.uint8
    assert [round(s[0], 3) for s in snaps] == [1.0, 0.667, 0.333, 0.0]
    again, _ = sample(de, 3, 6, torch.Generator().manual_seed(0))
    assert np.array_equal(imgs, again)


def test_data_helpers_and_baselines():
    big = np.zeros((1, 28, 28))
    big[0, :2, :2] = 255
    assert downsample(big)[0, 0, 0] == 255 and downsample(big).shape == (1, 14, 14)
    rng = np.random.default_rng(0)
    const = np.zeros((50, 14, 14), np.uint8)
    assert categorical_bpd(const, const, alpha=0.01) < 0.2 < categorical_bpd(const, rng.integers(0, 256, (5, 14, 14)))
    assert zlib_bpd(const[:2]) < 1 < zlib_bpd(rng.integers(0, 256, (2, 14, 14)).astype(np.uint8))
    paper = np.full((56, 56), 255, np.uint8)
    paper[10:46, 24:32] = 0  # dark stroke on white
    d = to_digit(paper)
    assert d.shape == (14, 14) and d[7, 7] > 200 and d[0, 0] == 0, "ink becomes white on black"
    with pytest.raises(ValueError, match="2-D image"):
        to_digit(np.zeros((2, 2)))


def test_public_bpd_on_a_model_object_and_upload_bytes():
    import io

    from PIL import Image

    from backend.diffenc import Model, bpd

    _, de = _pair()
    m = Model("diffenc", "diffenc", de.float(), {})
    imgs = np.random.default_rng(1).integers(0, 256, (3, 14, 14)).astype(np.uint8)
    r = bpd(imgs, m, repeats=2, seed=3)
    assert r.bpd.shape == (3,) and r.draws.shape == (2, 3) and set(r.terms) == {"diffusion", "latent", "recon"}
    assert np.allclose(r.bpd, bpd(imgs, m, repeats=2, seed=3).bpd), "same seed, same draws"
    assert bpd(imgs[0], m, 1, 0).bpd.shape == (1,)
    with pytest.raises(ValueError, match="repeats"):
        bpd(imgs, m, repeats=0)
    with pytest.raises(ValueError, match="14x14"):
        bpd(np.zeros((2, 28, 28), np.uint8), m)
    buf = io.BytesIO()
    Image.fromarray(np.pad(np.full((20, 8), 255, np.uint8), 14)).save(buf, format="PNG")
    d = to_digit(buf.getvalue())
    assert d.shape == (14, 14) and d.max() > 100 and d[0, 0] == 0
