"""The public face of the Cells domain: a trained CFGen model that generates integer counts for chosen
attributes, loading the shipped checkpoint, and (de)serialising a model trained in the app.
"""

from __future__ import annotations

import io

import numpy as np
import pandas as pd
import torch

from backend.cells.autoencoder import NBAutoencoder, nb_csr, sample_nb
from backend.cells.flow import DEFAULT_STEPS, VelocityNet, integrate
from backend.cells.threads import one_thread
from backend.core.cache import LockedModel, cached
from backend.core.device import get_device
from backend.core.progress import as_progress
from backend.core.registry import load_checkpoint

CHECKPOINTS = {"pbmc68k": "cells-pbmc68k"}
MAX_GENERATE = 200_000


class CellsModel(LockedModel):
    """A trained CFGen model: NB autoencoder + latent flow + the size factors of its training cells."""

    def __init__(self, payload: dict, device=None, card: dict | None = None):
        super().__init__()
        self.device = torch.device(device) if device is not None else torch.device("cpu")
        self.config = dict(payload["config"])
        self.var_names = list(payload["var_names"])
        self.condition_keys = list(payload["condition_keys"])
        self.categories = {k: list(v) for k, v in payload["categories"].items()}
        c = self.config
        self.ae = NBAutoencoder(len(self.var_names), tuple(c["ae_hidden"]), c["latent"]).to(self.device)
        self.flow = VelocityNet(c["latent"], [len(self.categories[k]) for k in self.condition_keys],
                                c["flow_hidden"], c["flow_emb"], c["flow_blocks"]).to(self.device)
        if "ae" in payload:
            self.ae.load_state_dict(payload["ae"])
            self.flow.load_state_dict(payload["flow"])
        self.ae.eval()
        self.flow.eval()
        self.latent_mean = torch.as_tensor(payload.get("latent_mean", torch.zeros(c["latent"]))).float()
        self.latent_std = torch.as_tensor(payload.get("latent_std", torch.ones(c["latent"]))).float()
        self.lib_sizes = np.asarray(payload["lib_sizes"], dtype=np.float32)
        self.lib_codes = np.asarray(payload["lib_codes"], dtype=np.int64).reshape(len(self.lib_sizes), -1)
        # per-type inverse dispersion for the first attribute (CFGen's covariate_specific_theta), if trained
        lt = payload.get("log_theta_type")
        self.log_theta_type = None if lt is None else torch.as_tensor(lt).float()
        self.reference = payload.get("reference")
        self.split = payload.get("split")
        self.evaluation = payload.get("evaluation") or {}  # the held-out evaluation's detail (shipped models)
        self.card = card or {}
        self.name = payload.get("name", "uploaded")

    # -- serialisation ---------------------------------------------------------------------------
    def payload(self) -> dict:
        out = {
            "name": self.name, "config": self.config, "var_names": self.var_names,
            "condition_keys": self.condition_keys, "categories": self.categories,
            "ae": {k: v.detach().cpu() for k, v in self.ae.state_dict().items()},
            "flow": {k: v.detach().cpu() for k, v in self.flow.state_dict().items()},
            "latent_mean": self.latent_mean.cpu(), "latent_std": self.latent_std.cpu(),
            "lib_sizes": torch.as_tensor(self.lib_sizes), "lib_codes": torch.as_tensor(self.lib_codes),
        }
        if self.log_theta_type is not None:
            out["log_theta_type"] = self.log_theta_type
        if self.reference is not None:
            out["reference"] = self.reference
        if self.split is not None:
            out["split"] = self.split
        return out

    @property
    def n_heldout(self) -> int:
        """Cells held out from training (0: an upload too small to hold any out; it has no metrics)."""
        sp = self.split or {}
        return len(sp["test"]) if "test" in sp else len(sp.get("test_obs", []))

    @property
    def digest(self) -> str:
        """A stable hash of the weights, genes and attributes (computed once): keys per-user results, unlike
        `id()`, whose values are reused after garbage collection."""
        if getattr(self, "_digest", None) is None:
            import hashlib

            h = hashlib.sha1(repr((self.var_names, self.condition_keys, self.categories)).encode())
            for sd in (self.ae.state_dict(), self.flow.state_dict()):
                for k, v in sd.items():
                    h.update(k.encode())
                    h.update(v.detach().cpu().numpy().tobytes())
            self._digest = h.hexdigest()[:16]
        return self._digest

    def to_bytes(self) -> bytes:
        buf = io.BytesIO()
        torch.save(self.payload(), buf)
        return buf.getvalue()

    @property
    def n_genes(self) -> int:
        return len(self.var_names)

    # -- generation ------------------------------------------------------------------------------
    def _codes(self, conditions, n: int) -> tuple[np.ndarray, list[bool], pd.DataFrame]:
        """(n, k) category codes, which attributes are conditioned, and the obs table for the output."""
        k = len(self.condition_keys)
        codes = np.zeros((n, k), dtype=np.int64)
        used = [False] * k
        obs = pd.DataFrame(index=[f"gen-{i}" for i in range(n)])
        if conditions is None:
            return codes, used, obs
        if isinstance(conditions, pd.DataFrame):
            if len(conditions) != n:
                raise ValueError(f"The conditions table has {len(conditions)} rows but n={n} cells were asked for.")
            table = {c: conditions[c].astype(str).to_numpy() for c in conditions.columns}
        elif isinstance(conditions, dict):
            table = {c: np.full(n, str(v), dtype=object) for c, v in conditions.items() if v is not None}
        else:
            raise ValueError("conditions must be a dict {attribute: value}, a DataFrame with n rows, or None.")
        for col, vals in table.items():
            if col not in self.condition_keys:
                raise ValueError(f"This model cannot condition on {col!r}; its attributes are "
                                 f"{', '.join(self.condition_keys) or '(none: unconditional model)'}.")
            i = self.condition_keys.index(col)
            cats = self.categories[col]
            lookup = {c: j for j, c in enumerate(cats)}
            bad = sorted({v for v in vals if v not in lookup})
            if bad:
                raise ValueError(f"Unknown {col} value {bad[0]!r}; choose from: {', '.join(cats)}.")
            codes[:, i] = [lookup[v] for v in vals]
            used[i] = True
            obs[col] = pd.Categorical(vals, categories=cats)
        return codes, used, obs

    def _size_factors(self, codes: np.ndarray, used: list[bool], rng: np.random.Generator) -> np.ndarray:
        """Copy library sizes from random training cells that share the conditions (as CFGen's notebooks).

        Unseen combinations fall back to cells matching the first conditioned attribute(s), then to all cells.
        """
        n = codes.shape[0]
        out = np.empty(n, dtype=np.float32)
        active = [i for i, u in enumerate(used) if u]
        keys, inverse = np.unique(codes[:, active], axis=0, return_inverse=True)
        inverse = inverse.reshape(-1)
        for g, key in enumerate(keys):
            rows = np.flatnonzero(inverse == g)
            pool = np.arange(len(self.lib_sizes))
            for m in range(len(active), -1, -1):
                sel = np.ones(len(self.lib_sizes), bool)
                for j in range(m):
                    sel &= self.lib_codes[:, active[j]] == key[j]
                if sel.any():
                    pool = np.flatnonzero(sel)
                    break
            out[rows] = self.lib_sizes[rng.choice(pool, size=len(rows))]
        return out

    @one_thread
    def generate(self, n: int = 500, conditions=None, guidance=None, seed: int = 0, steps: int | None = DEFAULT_STEPS,
                 solver: str = "midpoint", progress=None, batch: int = 2048):
        """Generate `n` cells of integer counts.

        conditions: dict {attribute: value} (all cells alike), a DataFrame with n rows, or None (unconditional).
        guidance: None (weight 1 for each conditioned attribute), a float for all, or {attribute: weight}.
        steps: fixed ODE steps (midpoint: 2 network evaluations each). `batch` rows are integrated at a time
        (small batches stay in the CPU cache). Returns AnnData over `self.var_names`; obs holds the conditions
        and the size factor used.
        """
        import anndata as ad

        n = int(n)
        if n < 1 or n > MAX_GENERATE:
            raise ValueError(f"Number of cells must be between 1 and {MAX_GENERATE:,} (got {n}).")
        steps = DEFAULT_STEPS if steps is None else int(steps)
        codes, used, obs = self._codes(conditions, n)
        weights: list = [None] * len(self.condition_keys)
        for i, key in enumerate(self.condition_keys):
            if not used[i]:
                continue
            if guidance is None:
                w = 1.0
            elif isinstance(guidance, dict):
                w = float(guidance.get(key, 1.0))
            else:
                w = float(guidance)
            if not np.isfinite(w) or w < 0:
                raise ValueError(f"Guidance weight for {key} must be a non-negative number (got {w}).")
            weights[i] = w
        p = as_progress(progress)
        rng = np.random.default_rng(seed)
        gen = torch.Generator(device="cpu").manual_seed(int(seed))
        x0 = torch.randn(n, self.config["latent"], generator=gen)
        lib = torch.as_tensor(self._size_factors(codes, used, rng))
        codes_t = torch.as_tensor(codes)
        z = torch.empty_like(x0)
        n_chunks = (n + batch - 1) // batch
        with self.lock, torch.inference_mode():
            for c in range(n_chunks):
                sl = slice(c * batch, min(n, (c + 1) * batch))
                z[sl] = integrate(self.flow, x0[sl].to(self.device), codes_t[sl].to(self.device), weights,
                                  steps=steps, solver=solver,
                                  progress=_Sub(p, c, n_chunks) if progress is not None else None).cpu()
            z = z * self.latent_std + self.latent_mean
            mus = [self.ae.mean(z[s : s + 4096].to(self.device), lib[s : s + 4096].to(self.device)).cpu()
                   for s in range(0, n, 4096)]
            mu = torch.cat(mus) if len(mus) > 1 else mus[0]
            # exact NB counts, sampled sparse (most entries are zeros) from the same seeded generator
            if self.log_theta_type is not None and used and used[0]:  # the cell's type sets its dispersion
                theta = self.log_theta_type.exp()[codes_t[:, 0]]
            else:
                theta = self.ae.theta.detach().cpu()
            x = nb_csr(mu, theta, gen)
        obs["size_factor"] = lib.numpy()
        out = ad.AnnData(X=x, obs=obs, var=pd.DataFrame(index=list(self.var_names)))
        out.uns["generation"] = {"seed": int(seed), "steps": int(steps), "solver": solver,
                                 "guidance": {k: w for k, w in zip(self.condition_keys, weights) if w is not None}}
        return out

    @one_thread
    def encode_decode(self, counts, seed: int = 0):
        """Reconstruct counts through the autoencoder (a check of stage 1 alone)."""
        import scipy.sparse as sp

        x = counts.toarray() if sp.issparse(counts) else np.asarray(counts)
        with self.lock, torch.inference_mode():
            xt = torch.as_tensor(x, dtype=torch.float32, device=self.device)
            mu = self.ae.mean(self.ae.encode(xt), xt.sum(1)).cpu().numpy()
        return sample_nb(mu, self.ae.theta.detach().cpu().numpy(), np.random.default_rng(seed))


class _Sub:
    """Progress of chunk c of m, mapped onto one 0..1000 scale."""

    def __init__(self, p, c, m):
        self.p, self.c, self.m = p, c, m

    def update(self, step, total, msg=""):
        self.p.update(int(1000 * (self.c + step / total) / self.m), 1000, msg)


@cached
def load_model(name: str = "pbmc68k", device: str | None = None) -> CellsModel:
    """The shipped CFGen model for a bundled dataset (cached once per process)."""
    if name not in CHECKPOINTS:
        raise ValueError(f"No shipped model for {name!r}; available: {', '.join(CHECKPOINTS)}.")
    dev = get_device(device)
    payload, card = load_checkpoint(CHECKPOINTS[name], map_location="cpu")
    return CellsModel(payload, device=dev, card=card)


def shipped_evaluation(name: str = "pbmc68k") -> dict:
    """The shipped model's held-out evaluation detail (validation rows, per-type table,
    augmentation, reference numbers): the checkpoint's "evaluation" entry, beside its slim card."""
    return load_model(name).evaluation


def load_model_bytes(data) -> CellsModel:
    """A model saved with `CellsModel.to_bytes()` (e.g. downloaded from the app)."""
    raw = data.getvalue() if hasattr(data, "getvalue") else bytes(data)
    try:
        payload = torch.load(io.BytesIO(raw), map_location="cpu", weights_only=True)
        return CellsModel(payload, device=get_device())
    except Exception as e:
        raise ValueError(f"This file is not a Cells model saved by Latent Lab ({type(e).__name__}).") from e
