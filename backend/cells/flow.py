"""Stage 2 of CFGen (Palma et al., ICLR 2025, arXiv 2407.11734): conditional flow matching in latent space.

`VelocityNet` is a small residual MLP predicting the flow-matching velocity in the (standardised) latent space,
conditioned on time and on any subset of the attributes (one embedding table per attribute, summed with the time
embedding; a masked attribute contributes nothing = "unconditional"). `integrate` solves the guided ODE from
noise to latents with compositional classifier-free guidance.
"""

from __future__ import annotations

import math

import torch
from torch import nn

DEFAULT_STEPS = 10  # midpoint steps (2 network evaluations each): chosen on validation (NAME.pt's evaluation)


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


class GuidedField:
    """The guided velocity field for fixed codes and weights, evaluated cheaply many times (ODE sampling).

    Same maths as `guided_velocity`, restructured for speed: the embedding entering each residual block is
    linear in (time embedding + attribute embeddings), so each block's attribute projection is computed once
    per call (not at every solver step), and the time MLP runs on one row per step instead of one per cell.
    The unconditional and single-attribute branches are stacked into one batch as in `guided_velocity`.
    """

    def __init__(self, net: VelocityNet, codes, weights, batch: int):
        self.net = net
        active = [i for i, w in enumerate(weights) if w is not None]
        if not active:
            branches, self.coef = [[]], None
        elif len(active) == 1 and float(weights[active[0]]) == 1.0:
            branches, self.coef = [[active[0]]], None  # v0 + 1 (v1 - v0) = v1: one branch
        else:
            branches = [[]] + [[i] for i in active]
            self.coef = [float(weights[i]) for i in active]
        self.n = len(branches)
        self.b = batch
        e = torch.zeros(self.n * batch, net.emb_dim, device=codes.device)
        for j, br in enumerate(branches):
            for i in br:
                e[j * batch : (j + 1) * batch] += net.attr[i](codes[:, i])
        self.attr_proj = [torch.nn.functional.linear(e, blk.emb.weight) for blk in net.blocks]

    def __call__(self, x: torch.Tensor, t: float) -> torch.Tensor:
        net = self.net
        te = net.time_mlp(timestep_embedding(torch.tensor([float(t)], device=x.device), net.emb_dim))  # (1, emb)
        xs = x.repeat(self.n, 1) if self.n > 1 else x
        h = net.inp(xs)
        for blk, ap in zip(net.blocks, self.attr_proj):
            r = blk.lin1(torch.nn.functional.silu(h)).add_(ap).add_(blk.emb(te))
            h = h + blk.lin2(torch.nn.functional.silu(r))
        v = net.out(h)
        if self.n == 1:
            return v
        v = v.reshape(self.n, self.b, -1)
        out = v[0].clone()
        for j, w in enumerate(self.coef):
            out.add_(v[j + 1] - v[0], alpha=w)
        return out


def integrate(net: VelocityNet, x0, codes, weights, steps: int = DEFAULT_STEPS, solver: str = "midpoint",
              progress=None):
    """Fixed-step ODE solve of dx/dt = v from t=0 (noise) to t=1 (latent); Euler or midpoint."""
    if solver not in ("euler", "midpoint"):
        raise ValueError(f"Unknown solver {solver!r}; use 'euler' or 'midpoint'.")
    steps = int(steps)
    if steps < 1:
        raise ValueError("The sampler needs at least 1 step.")
    field = GuidedField(net, codes, weights, x0.shape[0])
    x, dt = x0, 1.0 / steps
    for s in range(steps):
        t = s * dt
        if solver == "euler":
            x = x + dt * field(x, t)
        else:
            xm = x + 0.5 * dt * field(x, t)
            x = x + dt * field(xm, t + 0.5 * dt)
        if progress is not None:
            progress.update(s + 1, steps, "integrating the flow")
    return x
