"""CFGen's two stages as torch modules (Palma et al., ICLR 2025, arXiv 2407.11734).

Stage 1, `NBAutoencoder`: a deterministic autoencoder on log1p(counts) whose decoder gives negative-binomial
means mu = softmax(dec(z)) * l (l = the cell's total count over the modelled genes) with a learned per-gene
inverse dispersion theta. Stage 2, `VelocityNet`: a small residual MLP predicting the flow-matching velocity in
the (standardised) latent space, conditioned on time and on any subset of the attributes (one embedding table
per attribute, summed with the time embedding; a masked attribute contributes nothing = "unconditional").
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import nn

EPS = 1e-8


def nb_log_prob(x: torch.Tensor, mu: torch.Tensor, theta: torch.Tensor) -> torch.Tensor:
    """log NB(x | mean mu, inverse dispersion theta), elementwise (scvi's parametrisation)."""
    log_theta_mu = torch.log(theta + mu + EPS)
    return (torch.lgamma(x + theta) - torch.lgamma(theta) - torch.lgamma(x + 1)
            + theta * (torch.log(theta + EPS) - log_theta_mu) + x * (torch.log(mu + EPS) - log_theta_mu))


def sample_nb(mu: np.ndarray, theta: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Integer NB draws by the Gamma-Poisson mixture: lambda ~ Gamma(theta, scale mu/theta), x ~ Poisson(lambda)."""
    mu = np.asarray(mu, dtype=np.float64)
    theta = np.broadcast_to(np.asarray(theta, dtype=np.float64), mu.shape)
    lam = rng.gamma(shape=theta, scale=np.maximum(mu, 0) / theta)
    return rng.poisson(lam).astype(np.float32)


def _mlp(sizes: list[int]) -> nn.Sequential:
    layers: list[nn.Module] = []
    for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:])):
        layers.append(nn.Linear(a, b))
        if i < len(sizes) - 2:  # Linear -> BatchNorm -> ELU, last Linear without activation (as CFGen)
            layers += [nn.BatchNorm1d(b), nn.ELU()]
    return nn.Sequential(*layers)


class NBAutoencoder(nn.Module):
    def __init__(self, n_genes: int, hidden: tuple[int, ...] = (512, 256), latent: int = 50):
        super().__init__()
        self.encoder = _mlp([n_genes, *hidden, latent])
        self.decoder = _mlp([latent, *reversed(hidden), n_genes])
        self.log_theta = nn.Parameter(torch.zeros(n_genes))

    @property
    def theta(self) -> torch.Tensor:
        return self.log_theta.exp()

    def encode(self, counts: torch.Tensor) -> torch.Tensor:
        return self.encoder(torch.log1p(counts))

    def mean(self, z: torch.Tensor, lib: torch.Tensor) -> torch.Tensor:
        return torch.softmax(self.decoder(z), dim=-1) * lib.reshape(-1, 1)

    def loss(self, counts: torch.Tensor) -> torch.Tensor:
        lib = counts.sum(1)
        mu = self.mean(self.encode(counts), lib)
        return -nb_log_prob(counts, mu, self.theta).sum(1).mean()


def timestep_embedding(t: torch.Tensor, dim: int, max_period: float = 10000.0) -> torch.Tensor:
    """Sinusoidal embedding of t * 1000 (as CFGen's MLPTimeStep)."""
    half = dim // 2
    freqs = torch.exp(-math.log(max_period) * torch.arange(half, dtype=torch.float32, device=t.device) / half)
    args = (t.reshape(-1, 1).float() * 1000.0) * freqs[None]
    emb = torch.cat([torch.cos(args), torch.sin(args)], dim=-1)
    if dim % 2:
        emb = torch.cat([emb, torch.zeros_like(emb[:, :1])], dim=-1)
    return emb


class ResBlock(nn.Module):
    def __init__(self, hidden: int, emb: int):
        super().__init__()
        self.lin1 = nn.Linear(hidden, hidden)
        self.emb = nn.Linear(emb, hidden)
        self.lin2 = nn.Linear(hidden, hidden)
        nn.init.zeros_(self.lin2.weight)  # zero-initialised output: each block starts as the identity
        nn.init.zeros_(self.lin2.bias)
        self.act = nn.SiLU()

    def forward(self, h, e):
        r = self.lin1(self.act(h)) + self.emb(e)
        return h + self.lin2(self.act(r))


class VelocityNet(nn.Module):
    """v(x, t, c): Linear -> residual blocks (time + attribute embeddings injected) -> SiLU -> Linear."""

    def __init__(self, dim: int, n_categories: list[int], hidden: int = 128, emb: int = 64, n_blocks: int = 3):
        super().__init__()
        self.emb_dim = emb
        self.time_mlp = nn.Sequential(nn.Linear(emb, emb), nn.SiLU(), nn.Linear(emb, emb))
        self.attr = nn.ModuleList([nn.Embedding(n, emb) for n in n_categories])
        self.inp = nn.Linear(dim, hidden)
        self.blocks = nn.ModuleList([ResBlock(hidden, emb) for _ in range(n_blocks)])
        self.out = nn.Sequential(nn.SiLU(), nn.Linear(hidden, dim))

    def forward(self, x, t, codes=None, mask=None):
        """codes: (B, k) long category ids, mask: (B, k) 1 where the attribute conditions, 0 = dropped."""
        e = self.time_mlp(timestep_embedding(t.expand(x.shape[0]) if t.dim() == 0 else t, self.emb_dim))
        if codes is not None and len(self.attr):
            for i, table in enumerate(self.attr):
                e = e + table(codes[:, i]) * mask[:, i : i + 1]
        h = self.inp(x)
        for b in self.blocks:
            h = b(h, e)
        return self.out(h)


def fm_pair(z1: torch.Tensor, t: torch.Tensor, eps: torch.Tensor, sigma: float = 1e-4):
    """Point x_t on the conditional OT path from noise eps to z1, and its target velocity u_t."""
    t = t.reshape(-1, 1)
    xt = t * z1 + (1 - (1 - sigma) * t) * eps
    ut = z1 - (1 - sigma) * eps
    return xt, ut


def guided_velocity(net: VelocityNet, x, t, codes, weights) -> torch.Tensor:
    """Compositional classifier-free guidance: v = v(x|0) + sum_i w_i (v(x|c_i) - v(x|0)).

    codes: (B, k) category ids (ignored where weights[i] is None), weights: list of k floats or None.
    One batched forward pass evaluates the unconditional and each active single-attribute field.
    """
    active = [i for i, w in enumerate(weights) if w is not None]
    b = x.shape[0]
    k = codes.shape[1] if codes is not None else 0
    if not active:
        zeros = torch.zeros(b, k, dtype=torch.long, device=x.device)
        return net(x, t, zeros, torch.zeros(b, k, device=x.device))
    if len(active) == 1 and float(weights[active[0]]) == 1.0:
        # v0 + 1 * (v1 - v0) = v1 exactly: skip the unconditional pass
        mask = torch.zeros(b, k, device=x.device)
        mask[:, active[0]] = 1.0
        return net(x, t, codes, mask)
    n = 1 + len(active)
    xs = x.repeat(n, 1)
    cs = codes.repeat(n, 1)
    ms = torch.zeros(n * b, k, device=x.device)
    for j, i in enumerate(active):
        ms[(j + 1) * b : (j + 2) * b, i] = 1.0
    v = net(xs, t, cs, ms).reshape(n, b, -1)
    out = v[0].clone()
    for j, i in enumerate(active):
        out = out + float(weights[i]) * (v[j + 1] - v[0])
    return out


def integrate(net: VelocityNet, x0, codes, weights, steps: int = 30, solver: str = "midpoint", progress=None):
    """Fixed-step ODE solve of dx/dt = v from t=0 (noise) to t=1 (latent); Euler or midpoint."""
    if solver not in ("euler", "midpoint"):
        raise ValueError(f"Unknown solver {solver!r}; use 'euler' or 'midpoint'.")
    steps = int(steps)
    if steps < 1:
        raise ValueError("The sampler needs at least 1 step.")
    x, dt = x0, 1.0 / steps
    for s in range(steps):
        t = torch.tensor(s * dt, device=x.device)
        if solver == "euler":
            x = x + dt * guided_velocity(net, x, t, codes, weights)
        else:
            xm = x + 0.5 * dt * guided_velocity(net, x, t, codes, weights)
            x = x + dt * guided_velocity(net, xm, t + 0.5 * dt, codes, weights)
        if progress is not None:
            progress.update(s + 1, steps, "integrating the flow")
    return x
