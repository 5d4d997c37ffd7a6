"""Stage 1 of CFGen (Palma et al., ICLR 2025, arXiv 2407.11734): the count autoencoder and its likelihood.

`NBAutoencoder` is a deterministic autoencoder on log1p(counts) whose decoder gives negative-binomial means
mu = softmax(dec(z)) * l (l = the cell's total count over the modelled genes) with a learned per-gene inverse
dispersion theta. The negative binomial's log-probability and an exact, sparse sampler live here too.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

EPS = 1e-8


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
