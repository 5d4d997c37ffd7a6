"""What CFGen trains, as one module and one data pool: the count autoencoder (stage 1), the latent flow
(stage 2) and the per-cell-type inverse dispersions fit after stage 1 with the decoder held fixed (CFGen's
`covariate_specific_theta`). The recipes in `train.py` run them as three phases of the shared loop.

`CFGenModule.to_payload` / `from_payload` convert to and from the checkpoint format `CellsModel` reads.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import nn
from torch.nn.utils import parametrize

from backend.cells.autoencoder import NBAutoencoder, nb_log_prob
from backend.cells.flow import VelocityNet, fm_pair


class Scaled(nn.Module):
    """log theta = gain * stored value: under Adam (scale-free steps) the per-gene log inverse dispersion moves
    `gain` times faster than the network weights, as with a separate theta learning rate (the gradient clip of
    the autoencoder phase sees the stored value's gradient, `gain` times log theta's)."""

    def __init__(self, gain: float):
        super().__init__()
        self.gain = float(gain)

    def forward(self, x):
        return x * self.gain

    def right_inverse(self, x):
        return x / self.gain


class CFGenModule(nn.Module):
    """Autoencoder `ae`, velocity net `flow`, latent standardisation and per-type log theta (n_types, genes)."""

    def __init__(self, n_genes: int, n_categories: list[int], config: dict, n_types: int = 0):
        super().__init__()
        c = config
        self.ae = NBAutoencoder(n_genes, tuple(c["ae_hidden"]), c["latent"])
        self.flow = VelocityNet(c["latent"], list(n_categories), c["flow_hidden"], c["flow_emb"], c["flow_blocks"])
        self.register_buffer("latent_mean", torch.zeros(c["latent"]))
        self.register_buffer("latent_std", torch.ones(c["latent"]))
        self.log_theta_type = nn.Parameter(torch.zeros(n_types, n_genes)) if n_types else None
        parametrize.register_parametrization(self.ae, "log_theta", Scaled(c.get("theta_lr", 1.0) / c["ae_lr"]))

    def ae_state(self) -> dict:
        """The autoencoder's weights as a plain NBAutoencoder holds them."""
        out = {k: v.detach().cpu() for k, v in self.ae.state_dict().items() if not k.startswith("parametrizations.")}
        out["log_theta"] = self.ae.log_theta.detach().cpu()
        return out

    def to_payload(self) -> dict:
        out = {"ae": self.ae_state(), "flow": {k: v.detach().cpu() for k, v in self.flow.state_dict().items()},
               "latent_mean": self.latent_mean.cpu(), "latent_std": self.latent_std.cpu()}
        if self.log_theta_type is not None:
            out["log_theta_type"] = self.log_theta_type.detach().cpu().clone()
        return out

    @classmethod
    def from_payload(cls, payload: dict, config: dict) -> CFGenModule:
        cats = payload["categories"]
        lt = payload.get("log_theta_type")
        m = cls(len(payload["var_names"]), [len(cats[k]) for k in payload["condition_keys"]], config,
                0 if lt is None else int(lt.shape[0]))
        ae = dict(payload["ae"])
        log_theta = ae.pop("log_theta")
        m.ae.load_state_dict(ae, strict=False)
        with torch.no_grad():
            m.ae.log_theta = log_theta.float()
        m.flow.load_state_dict(payload["flow"])
        m.latent_mean.copy_(torch.as_tensor(payload["latent_mean"]))
        m.latent_std.copy_(torch.as_tensor(payload["latent_std"]))
        if lt is not None:
            with torch.no_grad():
                m.log_theta_type.copy_(torch.as_tensor(lt))
        return m


class CellPool:
    """The training cells as dense counts and category codes, with per-attribute category membership
    (for class-balanced conditioned rows) and, once stage 1 is trained, their standardised latents."""

    def __init__(self, counts, codes: np.ndarray, n_categories: list[int]):
        import scipy.sparse as sp

        x = counts.toarray() if sp.issparse(counts) else np.asarray(counts)
        self.x = torch.as_tensor(np.asarray(x, np.float32))
        self.codes = torch.as_tensor(np.asarray(codes, np.int64).reshape(len(self.x), -1))
        self.n_categories = list(n_categories)
        self.z = None
        self.members = []
        for i in range(self.codes.shape[1]):
            col = self.codes[:, i]
            order = torch.argsort(col, stable=True)
            n = torch.bincount(col, minlength=self.n_categories[i])
            self.members.append((order, torch.cumsum(n, 0) - n, n, torch.nonzero(n).squeeze(1)))

    def __len__(self) -> int:
        return len(self.x)

    def rows(self, b: int, gen: torch.Generator) -> torch.Tensor:
        return torch.randint(0, len(self), (min(b, len(self)),), generator=gen)

    @torch.no_grad()
    def encode(self, model: CFGenModule, device) -> None:
        """Latents of all cells with the (eval-mode) encoder; sets the model's standardisation."""
        was = model.ae.training
        model.ae.eval()
        z = torch.cat([model.ae.encode(self.x[s : s + 4096].to(device)) for s in range(0, len(self), 4096)])
        model.ae.train(was)
        model.latent_mean.copy_(z.mean(0))
        model.latent_std.copy_(z.std(0).clamp_min(1e-4))
        self.z = ((z - model.latent_mean) / model.latent_std).cpu()


def ae_loss(model: CFGenModule, counts: torch.Tensor) -> torch.Tensor:
    """Negative-binomial reconstruction loss per gene (a batch of one cell is doubled for BatchNorm)."""
    if counts.shape[0] < 2:
        counts = counts.repeat(2, 1)
    return model.ae.loss(counts) / counts.shape[1]


def flow_batch(pool: CellPool, b: int, gen: torch.Generator, p_cond: float, balanced: bool) -> tuple:
    """(latents z1, times t, noise eps, codes, mask) of a flow-matching batch.

    Stratified ("antithetic") times, as CFGen. Each row conditions on ONE random attribute with probability
    p_cond, else none. With `balanced`, a row conditioned on attribute i gets a cell of a uniformly drawn
    category of i: the target of v(x|c_i) depends only on p(z|c_i), which this leaves unchanged, while rare
    categories get as many updates as common ones; unconditional rows keep the data distribution.
    """
    idx = pool.rows(b, gen)
    b = idx.shape[0]
    t0 = torch.rand(1, generator=gen).item() / b
    t = (t0 + torch.arange(b, dtype=torch.float32) / b)[torch.randperm(b, generator=gen)]
    eps = torch.randn((b, pool.z.shape[1]), generator=gen)
    k = pool.codes.shape[1]
    mask = torch.zeros(b, k)
    if k:
        cond = torch.rand(b, generator=gen) < p_cond
        which = torch.randint(0, k, (b,), generator=gen)
        rows = torch.nonzero(cond).ravel()
        mask[rows, which[rows]] = 1.0
        if balanced:
            for i, (order, start, counts, present) in enumerate(pool.members):
                r = rows[which[rows] == i]
                if r.numel():
                    cat = present[torch.randint(0, present.numel(), (r.numel(),), generator=gen)]
                    pos = (torch.rand(r.numel(), generator=gen) * counts[cat]).long()
                    idx[r] = order[start[cat] + torch.minimum(pos, counts[cat] - 1)]
    return pool.z[idx], t, eps, pool.codes[idx], mask


def flow_loss(model: CFGenModule, batch: tuple, sigma: float) -> torch.Tensor:
    z1, t, eps, codes, mask = batch
    xt, ut = fm_pair(z1, t, eps, sigma)
    return ((model.flow(xt, t, codes, mask) - ut) ** 2).mean()


def dispersion_bounds(model: CFGenModule) -> tuple[float, float]:
    """Per-type log theta stays between the smallest shared log theta and log(1e4) (Poisson-like): unbounded,
    a gene never seen in a small type (all zeros) goes to theta -> 0 and would sample rare enormous counts."""
    shared = model.ae.log_theta.detach()
    return float(shared.min()), max(math.log(1e4), float(shared.max()))


def dispersion_loss(model: CFGenModule, counts: torch.Tensor, mu: torch.Tensor, types: torch.Tensor,
                    bounds: tuple[float, float]) -> torch.Tensor:
    """Mean negative log-likelihood under per-type thetas with the decoder's means `mu` fixed. The bounds
    are applied to the parameter before each step (and once more when the model is exported)."""
    with torch.no_grad():
        model.log_theta_type.clamp_(*bounds)
    return -nb_log_prob(counts, mu, model.log_theta_type[types].exp()).mean()


@torch.no_grad()
def decoder_means(model: CFGenModule, counts: torch.Tensor) -> torch.Tensor:
    was = model.ae.training
    model.ae.eval()
    mu = model.ae.mean(model.ae.encode(counts), counts.sum(1))
    model.ae.train(was)
    return mu
