"""CFGen's two stages as torch modules (Palma et al., ICLR 2025, arXiv 2407.11734).

Stage 1, `NBAutoencoder`: a deterministic autoencoder on log1p(counts) whose decoder gives negative-binomial
means mu = softmax(dec(z)) * l (l = the cell's total count over the modelled genes) with a learned per-gene
inverse dispersion theta. Stage 2, `VelocityNet`: a small residual MLP predicting the flow-matching velocity in
the (standardised) latent space, conditioned on time and on any subset of the attributes (one embedding table
per attribute, summed with the time embedding; a masked attribute contributes nothing = "unconditional").
"""

from __future__ import annotations

import math
import time

import numpy as np
import torch
from torch import nn

EPS = 1e-8
DEFAULT_STEPS = 10  # midpoint steps (2 network evaluations each): see the card's validation step sweep


def nb_log_prob(x: torch.Tensor, mu: torch.Tensor, theta: torch.Tensor) -> torch.Tensor:
    """log NB(x | mean mu, inverse dispersion theta), elementwise (scvi's parametrisation)."""
    log_theta_mu = torch.log(theta + mu + EPS)
    return (torch.lgamma(x + theta) - torch.lgamma(theta) - torch.lgamma(x + 1)
            + theta * (torch.log(theta + EPS) - log_theta_mu) + x * (torch.log(mu + EPS) - log_theta_mu))


def sample_nb_sparse(mu: torch.Tensor, theta, generator: torch.Generator | None = None,
                     split: float = 4.0) -> tuple[torch.Tensor, torch.Tensor]:
    """Exact NB(mean mu, inverse dispersion theta) draws for an (n, G) mean matrix, returned sparse:
    (row-major flat indices of the nonzero draws, their counts as float32).

    One uniform u per entry decides the zeros, u <= P(0) = (theta/(theta+mu))^theta (most entries of a count
    matrix). The nonzero entries with mu <= `split` continue by inverse CDF, X = #{k : u > CDF(k)}, with
    P(k+1) = P(k) (k+theta)/(k+1) * mu/(theta+mu) on an ever smaller active set; those with a larger mean
    draw X | X > 0 from the Gamma-Poisson mixture (lambda ~ Gamma(theta, theta/mu), x ~ Poisson(lambda)),
    redrawing zeros. Vectorised in torch and sparse from the start: no Gamma and Poisson draw per entry and no
    dense intermediate. (Cost grows as theta -> 0, where the CDF walk and the redraws get long.)
    """
    mu = mu.float().clamp_min(0).contiguous()
    g = mu.shape[-1]
    theta = torch.as_tensor(theta, dtype=torch.float32)
    per_row = theta.dim() == 2  # (n, G): one inverse dispersion per cell and gene (e.g. per cell type)
    if not per_row:
        theta = theta.reshape(-1).expand(g) if theta.numel() == 1 else theta.reshape(-1)
    u = torch.rand(mu.shape, generator=generator)
    p0 = torch.exp(torch.log1p(mu / theta).mul_(-theta))  # (theta / (theta + mu))^theta, accurate for small mu
    idx = torch.nonzero((u > p0).view(-1)).squeeze(1)
    m = mu.view(-1)[idx]
    th = theta.expand_as(mu).reshape(-1)[idx] if per_row else theta[idx % g]
    ua, pk = u.view(-1)[idx], p0.view(-1)[idx]
    val = torch.ones(idx.numel(), dtype=torch.float32)
    big = m > split
    p = m / (m + th)
    # inverse CDF, k = 1 and 2 on all candidates (float32), then on the few beyond with compaction (float64)
    cdf = pk.clone()
    for k in range(2):
        pk.mul_(p * (k + th) / (k + 1))
        cdf.add_(pk)
        val.add_(((ua > cdf) & ~big).float())
    act = torch.nonzero((ua > cdf) & ~big).squeeze(1)
    st = torch.stack([th[act].double(), p[act].double(), ua[act].double(), pk[act].double(), cdf[act].double()])
    k = 2
    while act.numel():
        st[3] *= (k + st[0]) / (k + 1) * st[1]
        st[4] += st[3]
        k += 1
        # stop where the CDF passed u, or where P(k) < 1e-10: the mass left beyond (< ~1e-9 for mu <= split)
        # is below the float32 rounding of the first steps
        go = (st[2] > st[4]) & ((st[3] > 1e-10) | (k < 10))
        act, st = act[go], st[:, go]
        val[act] += 1.0
    bi = torch.nonzero(big).squeeze(1)
    while bi.numel():  # large means: Gamma-Poisson, conditioned on X > 0 by redrawing the zeros
        tb = th[bi]
        x = torch.poisson(torch._standard_gamma(tb, generator=generator) * (m[bi] / tb), generator=generator)
        val[bi] = x
        bi = bi[x == 0]
    return idx, val


def sample_nb_dense(mu: torch.Tensor, theta, generator: torch.Generator | None = None) -> torch.Tensor:
    """`sample_nb_sparse` as a dense float32 tensor shaped like mu."""
    mu2 = mu.reshape(-1, mu.shape[-1]) if mu.dim() else mu.reshape(1, 1)
    idx, val = sample_nb_sparse(mu2, theta, generator)
    out = torch.zeros(mu2.numel(), dtype=torch.float32)
    out[idx] = val
    return out.reshape(mu.shape)


def nb_csr(mu: torch.Tensor, theta, generator: torch.Generator | None = None):
    """NB counts for a (n, G) mean matrix as a scipy CSR matrix (float32), without a dense intermediate."""
    import scipy.sparse as sp

    n, g = mu.shape
    idx, val = sample_nb_sparse(mu, theta, generator)
    indptr = np.zeros(n + 1, dtype=np.int64)
    np.cumsum(np.bincount((idx // g).numpy(), minlength=n), out=indptr[1:])
    return sp.csr_matrix((val.numpy(), (idx % g).numpy().astype(np.int32), indptr), shape=(n, g))


def sample_nb(mu: np.ndarray, theta: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Dense integer NB draws (float32) for numpy inputs; the torch generator is seeded from `rng`."""
    mu = np.asarray(mu, dtype=np.float32)
    gen = torch.Generator().manual_seed(int(rng.integers(0, 2**62)))
    theta = torch.as_tensor(np.broadcast_to(np.asarray(theta, dtype=np.float32), mu.shape[-1:] or (1,)).copy())
    return sample_nb_dense(torch.as_tensor(mu), theta, gen).numpy()


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


def fit_group_theta(ae: NBAutoencoder, counts: torch.Tensor, groups: torch.Tensor, n_groups: int,
                    steps: int = 300, lr: float = 0.05, max_seconds: float | None = None) -> torch.Tensor:
    """Per-group (cell type) per-gene inverse dispersions, log theta (n_groups, G), by maximum likelihood with the
    trained decoder's means held fixed: CFGen's `covariate_specific_theta`, fit after the autoencoder.

    One theta per gene for all types has to absorb type-specific over-dispersion of marker genes (too many zeros
    in the types that express them). Starts from the shared log theta; groups without cells keep it. Unbounded,
    the maximum likelihood sends theta -> 0 for a gene never seen in a small type (all zeros), which would sample
    rare enormous counts; theta is kept at or above the smallest shared theta (no gene more over-dispersed than
    the most over-dispersed gene of the shared fit) and at most 1e4 (Poisson-like).
    """
    ae.eval()
    with torch.no_grad():
        mu = ae.mean(ae.encode(counts), counts.sum(1))
        start = ae.log_theta.detach().clone()
    lo, hi = float(start.min()), math.log(1e4)
    log_t = start.repeat(n_groups, 1).requires_grad_(True)
    opt = torch.optim.Adam([log_t], lr=lr)
    t0 = time.time()
    for _ in range(steps):
        if max_seconds is not None and time.time() - t0 > max_seconds:
            break  # time-budgeted (in-app training): fewer steps from the shared start
        loss = -nb_log_prob(counts, mu, log_t[groups].exp()).mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        with torch.no_grad():
            log_t.clamp_(lo, max(hi, float(start.max())))
    return log_t.detach()


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


def integrate(net: VelocityNet, x0, codes, weights, steps: int = DEFAULT_STEPS, solver: str = "midpoint", progress=None):
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
