"""From a learner's codes to scores: match learned to true variables (MCC), read the inferred intervention
targets in the true order, discover the graph on the learned variables and compare it with the true DAG.

Shared by the page's pipeline (`run_pipeline`) and the recipes' held-out evaluation (`train.py`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from backend.causal import data as D
from backend.causal import discovery as DI
from backend.causal import metrics as M
from backend.causal.learner import encode, infer_targets


@dataclass
class Codes:
    """A learner's view of held-out pairs: causal codes of both observations, noise codes of the first,
    and the inferred intervention target of each pair (code index, -1 none)."""

    c1: np.ndarray
    c2: np.ndarray
    targets: np.ndarray
    noise: np.ndarray | None = None


@dataclass
class Matched:
    """Learned variables reordered into the true variables' order (Hungarian matching on |corr|)."""

    mcc: float
    perm: np.ndarray  # learned dim perm[j] matched to true variable j
    c1: np.ndarray
    c2: np.ndarray
    targets: np.ndarray  # inferred targets in the true order (-1 none)


def learned_codes(model, scm: D.SCM, pairs: dict, observation: str) -> Codes:
    x1, x2 = D.observe(pairs["z"], scm, observation), D.observe(pairs["z_tilde"], scm, observation)
    e1, c1 = encode(model, x1, observation)
    e2, c2 = encode(model, x2, observation)
    return Codes(c1, c2, infer_targets(model, e1, e2), e1)


def oracle_codes(pairs: dict) -> Codes:
    return Codes(pairs["z"], pairs["z_tilde"], pairs["target"])


def match(codes: Codes, latents: np.ndarray) -> Matched:
    m, perm = M.mcc(codes.c1, latents)
    d = latents.shape[1]
    inv = np.full(d + 1, -1)
    inv[perm] = np.arange(d)
    t = np.where(codes.targets >= 0, inv[np.clip(codes.targets, 0, None)], -1)
    return Matched(m, perm, codes.c1[:, perm], codes.c2[:, perm], t)


def discover_graph(z1, z2, targets, method: str, alpha: float, use_interventions: bool) -> np.ndarray:
    """PC or GES on z1, optionally orienting edges by which variables move under the (inferred) interventions."""
    cp = DI.discover(z1, method, alpha)
    if use_interventions:
        cp = DI.orient_with_interventions(cp, DI.interventional_descendants(z1, z2, targets))
    return cp


def graph_scores(adjacency: np.ndarray, estimated: np.ndarray) -> dict:
    """SHD to the DAG and to its CPDAG, and SID (None where undefined)."""
    return {"shd": M.shd(adjacency, estimated), "shd_cpdag": M.shd(M.cpdag(adjacency), estimated),
            "sid": M.sid(adjacency, estimated)}


def dci_scores(codes: np.ndarray, latents: np.ndarray, n: int, seed: int = 0) -> dict:
    """DCI (random-forest importances) of the first `n` samples; importance as a nested list."""
    k = min(len(codes), int(n))
    out = M.dci(codes[:k], latents[:k], seed=seed)
    out["importance"] = np.asarray(out["importance"]).tolist()
    return out
