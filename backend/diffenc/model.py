"""Networks and the variational-diffusion maths for VDM (Kingma et al., NeurIPS 2021) and DiffEnc
(Nielsen, Christensen, Dittadi, Winther, ICLR 2024) on 14x14 digits.

Schedule: fixed linear gamma(t) = -13.3 + 18.3 t; alpha_t^2 = sigmoid(-gamma), sigma_t^2 = sigmoid(gamma).
Forward process: z_t = alpha_t x_t + sigma_t eps, where x_t = x for VDM and, for DiffEnc,
x_t = x_phi(x, t) = x + sigma_t^2 (y_phi(x, t) - x) (y ends in a zero-initialised tanh, so at init
x_phi = alpha_t^2 x). The score network predicts v; its data guess is a_hat = alpha z - sigma v_hat.
Continuous-time diffusion loss (Girsanov on the reverse SDE, whose drift depends on a_hat only):
  L_diff = 1/2 gamma' e^{-gamma} || a - a_hat ||^2,  a = x_t - d x_t / d gamma,
  = 1/2 gamma' alpha^2 || v - v_hat + sigma (alpha^2 (y - x) + dy/dgamma) ||^2  (DiffEnc),
  = 1/2 gamma' alpha^2 || v - v_hat ||^2  (VDM: x_t = x, i.e. y = x).
dy/dgamma comes from torch.func.jvp. Sampling is VDM's ancestral sampler with x_hat := a_hat.
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

GAMMA_MIN, GAMMA_MAX = -13.3, 5.0
VOCAB = 256


def gamma_of(t):
    return GAMMA_MIN + (GAMMA_MAX - GAMMA_MIN) * t


GAMMA_PRIME = GAMMA_MAX - GAMMA_MIN


def to_unit(images_u8: torch.Tensor) -> torch.Tensor:
    """uint8 levels 0..255 -> VDM's bin centres in (-1, 1)."""
    return 2 * ((images_u8.float() + 0.5) / VOCAB) - 1


def _time_features(g: torch.Tensor, dim: int) -> torch.Tensor:
    """Sinusoidal features of the normalised log-SNR (differentiable in g, for the JVP)."""
    s = (g - GAMMA_MIN) / (GAMMA_MAX - GAMMA_MIN)
    freqs = torch.exp(torch.linspace(0, math.log(200.0), dim // 2, device=g.device))
    a = s[:, None] * freqs[None, :]
    return torch.cat([torch.sin(a), torch.cos(a)], 1)


class Block(nn.Module):
    def __init__(self, c: int, tdim: int):
        super().__init__()
        self.n1, self.c1 = nn.GroupNorm(math.gcd(8, c), c), nn.Conv2d(c, c, 3, padding=1)
        self.n2, self.c2 = nn.GroupNorm(math.gcd(8, c), c), nn.Conv2d(c, c, 3, padding=1)
        self.t = nn.Linear(tdim, c)

    def forward(self, h, temb):
        r = self.c1(F.silu(self.n1(h))) + self.t(temb)[:, :, None, None]
        return h + self.c2(F.silu(self.n2(r)))


class Net(nn.Module):
    """Small U-Net for 14x14: `blocks` residual blocks at 14x14 and at 7x7 (width `ch`, 2*ch), skip between.
    `zero_tanh`: the output passes through tanh after a zero-initialised conv (DiffEnc's y_phi)."""

    def __init__(self, ch: int = 32, blocks: int = 2, tdim: int = 32, zero_tanh: bool = False):
        super().__init__()
        self.tdim = tdim
        self.tmlp = nn.Sequential(nn.Linear(tdim, tdim * 2), nn.SiLU(), nn.Linear(tdim * 2, tdim * 2))
        self.inp = nn.Conv2d(1, ch, 3, padding=1)
        self.down = nn.ModuleList([Block(ch, tdim * 2) for _ in range(blocks)])
        self.pool = nn.Conv2d(ch, 2 * ch, 3, stride=2, padding=1)
        self.mid = nn.ModuleList([Block(2 * ch, tdim * 2) for _ in range(blocks)])
        self.upc = nn.Conv2d(2 * ch, ch, 3, padding=1)
        self.up = nn.ModuleList([Block(ch, tdim * 2) for _ in range(blocks)])
        self.outn, self.out = nn.GroupNorm(math.gcd(8, ch), ch), nn.Conv2d(ch, 1, 3, padding=1)
        self.zero_tanh = zero_tanh
        if zero_tanh:
            nn.init.zeros_(self.out.weight)
            nn.init.zeros_(self.out.bias)

    def forward(self, x, g):
        temb = self.tmlp(_time_features(g, self.tdim))
        h = self.inp(x)
        for b in self.down:
            h = b(h, temb)
        skip = h
        h = self.pool(h)
        for b in self.mid:
            h = b(h, temb)
        h = self.upc(F.interpolate(h, size=skip.shape[-2:], mode="nearest")) + skip
        for b in self.up:
            h = b(h, temb)
        o = self.out(F.silu(self.outn(h)))
        return torch.tanh(o) if self.zero_tanh else o


class Encoder(nn.Module):
    """y_phi(x, gamma): a small conv net (no normalisation, few ops: it runs under a JVP every step),
    time by FiLM from sinusoidal features of gamma, ending in a zero-initialised conv and tanh."""

    def __init__(self, ch: int = 16, layers: int = 2, tdim: int = 16):
        super().__init__()
        self.tdim = tdim
        self.inp = nn.Conv2d(1, ch, 3, padding=1)
        self.hidden = nn.ModuleList([nn.Conv2d(ch, ch, 3, padding=1) for _ in range(layers)])
        self.film = nn.Linear(tdim, 2 * ch * (layers + 1))
        self.out = nn.Conv2d(ch, 1, 3, padding=1)
        nn.init.zeros_(self.out.weight)
        nn.init.zeros_(self.out.bias)

    def forward(self, x, g):
        films = self.film(_time_features(g, self.tdim))[:, :, None, None].chunk(2 * (len(self.hidden) + 1), 1)
        h = self.inp(x)
        for i, conv in enumerate([None, *self.hidden]):
            h = h if conv is None else conv(h)
            h = F.silu(h * (1 + films[2 * i]) + films[2 * i + 1])
        return torch.tanh(self.out(h))


class DiffusionModel(nn.Module):
    """`score` predicts v from (z_t, gamma_t); `encoder` (DiffEnc only) is y_phi(x, gamma_t)."""

    def __init__(self, ch: int = 16, blocks: int = 1, enc_ch: int = 0, enc_layers: int = 1):
        super().__init__()
        self.score = Net(ch, blocks)
        self.encoder = Encoder(enc_ch, enc_layers) if enc_ch else None

    # -- encoder ------------------------------------------------------------------------------------
    def y_and_dy(self, x, g):
        """y_phi(x, gamma) and its derivative along gamma (forward-mode, torch.func.jvp)."""
        if self.encoder is None:
            return x, torch.zeros_like(x)
        return torch.func.jvp(lambda gg: self.encoder(x, gg), (g,), (torch.ones_like(g),))

    def encode(self, x, g):
        """x_phi(x, gamma) = x + sigma^2 (y - x); VDM: x itself. Returns (x_phi, y)."""
        if self.encoder is None:
            return x, x
        y = self.encoder(x, g)
        s2 = torch.sigmoid(g)[:, None, None, None]
        return x + s2 * (y - x), y


def _bc(v):
    return v[:, None, None, None]


def diffusion_terms(model: DiffusionModel, x, t, eps):
    """Per-image terms in nats (summed over pixels) at times t (N,) with noise eps (N, 1, H, W):
    {"diffusion": L_diff integrand at t (unbiased for the integral over t in [0, 1]), "latent", "recon"}.
    DiffEnc runs its encoder under a JVP at gamma_t, and plainly at (gamma_0, gamma_1) stacked along the batch."""
    n = x.shape[0]
    g = gamma_of(t)
    g0, g1 = torch.full_like(g, GAMMA_MIN), torch.full_like(g, GAMMA_MAX)
    if model.encoder is None:
        xt, x0, x1, extra = x, x, x, 0.0
    else:
        y, dy = model.y_and_dy(x, g)  # the JVP only where the derivative is needed
        xt = x + _bc(torch.sigmoid(g)) * (y - x)
        ends, _ = model.encode(x.repeat(2, 1, 1, 1), torch.cat([g0, g1]))
        x0, x1 = ends[:n], ends[n:]
        extra = _bc(torch.sigmoid(g).sqrt()) * (_bc(torch.sigmoid(-g)) * (y - x) + dy)
    a2, s2 = torch.sigmoid(-g), torch.sigmoid(g)
    a, s = _bc(a2.sqrt()), _bc(s2.sqrt())
    z = a * xt + s * eps
    v = a * eps - s * xt
    v_hat = model.score(z, g)
    diff = 0.5 * GAMMA_PRIME * a2 * ((v - v_hat + extra) ** 2).flatten(1).sum(1)
    return {"diffusion": diff, "latent": latent_term(x1), "recon": recon_term(x0, x, eps)}


def latent_term(x1):
    """KL(q(z_1 | x) || N(0, I)) in nats per image, given the encoded x at t = 1."""
    a2, s2 = _sig(-GAMMA_MAX), _sig(GAMMA_MAX)
    kl = 0.5 * (s2 + a2 * x1 ** 2 - 1 - math.log(s2))
    return kl.flatten(1).sum(1)


def recon_term(x0, x, eps):
    """-log p(x | z_0) in nats per image: VDM's discretised 256-level decoder at gamma_0, z_0 from the
    encoded x_0 (x0) and the same noise eps as the diffusion term."""
    a0, s0 = math.sqrt(_sig(-GAMMA_MIN)), math.sqrt(_sig(GAMMA_MIN))
    z0 = a0 * x0 + s0 * eps
    return -log_probs(z0, a0, s0).gather(-1, _levels(x)).squeeze(-1).flatten(1).sum(1)


def log_probs(z0, a0: float, s0: float):
    """log p(level | z_0) over the 256 levels, shape (..., 256)."""
    centres = 2 * ((torch.arange(VOCAB, device=z0.device).float() + 0.5) / VOCAB) - 1
    logits = -0.5 * (z0[..., None] / a0 - centres) ** 2 / (s0 / a0) ** 2
    return torch.log_softmax(logits, -1)


def _levels(x):
    return torch.clamp(torch.round((x + 1) / 2 * VOCAB - 0.5), 0, VOCAB - 1).long()[..., None]


def stratified_t(n: int, generator: torch.Generator | None = None, device=None):
    """VDM's low-discrepancy times: one uniform offset, n evenly spaced points mod 1."""
    u = torch.rand((), generator=generator)
    return ((u + torch.arange(n) / n) % 1.0).to(device)


@torch.no_grad()
def sample(model: DiffusionModel, n: int, steps: int, generator: torch.Generator, size: int = 14,
           trajectory_every: int = 0):
    """Ancestral sampling from z_1 ~ N(0, I) over `steps` equal time steps, then the decoder's mode.
    Returns (uint8 levels (n, size, size), list of z_t snapshots (t, z) when trajectory_every > 0)."""
    z = torch.randn((n, 1, size, size), generator=generator)
    snaps = [(1.0, z.clone())] if trajectory_every else []
    for i in range(steps, 0, -1):
        t, s_ = i / steps, (i - 1) / steps
        g_t = torch.full((n,), gamma_of(t))
        g_s = gamma_of(s_)
        a_t, s2_t = math.sqrt(_sig(-gamma_of(t))), _sig(gamma_of(t))
        a_s, s2_s = math.sqrt(_sig(-g_s)), _sig(g_s)
        v_hat = model.score(z, g_t)
        x_hat = (a_t * z - math.sqrt(s2_t) * v_hat).clamp(-1, 1)
        # q(z_s | z_t, x) for the variance-preserving process (VDM eq. 33-34); -expm1(g_s - g_t) = 1 - SNR_t/SNR_s
        c = -math.expm1(g_s - gamma_of(t))
        mean = a_s * (z * (1 - c) / a_t + c * x_hat)
        z = mean + math.sqrt(c * s2_s) * torch.randn(z.shape, generator=generator)
        if trajectory_every and ((steps - i + 1) % trajectory_every == 0 or i == 1):
            snaps.append((s_, z.clone()))
    a0, s0 = math.sqrt(_sig(-GAMMA_MIN)), math.sqrt(_sig(GAMMA_MIN))
    levels = log_probs(z[:, 0], a0, s0).argmax(-1)
    return levels.to(torch.uint8).numpy(), snaps


def _sig(v: float) -> float:
    return 1.0 / (1.0 + math.exp(-v))


def n_params(module: nn.Module) -> int:
    return int(sum(p.numel() for p in module.parameters()))


def as_numpy(t: torch.Tensor) -> np.ndarray:
    return t.detach().cpu().numpy()
