"""Causal discovery on (learned or true) causal variables with causal-learn, plus orientation from
interventional effects when pairs with known or inferred intervention targets are available."""

from __future__ import annotations

import contextlib
import io

import numpy as np

from backend.causal.metrics import causallearn_to_adjacency

METHODS = ("pc", "ges")


def check_alpha(alpha: float) -> float:
    alpha = float(alpha)
    if not 0 < alpha < 1:
        raise ValueError(f"The significance level alpha must lie strictly between 0 and 1 (got {alpha}).")
    return alpha


def discover(z: np.ndarray, method: str = "pc", alpha: float = 0.01) -> np.ndarray:
    """A CPDAG (0/1, undirected edges symmetric) from samples z (n,d): PC with Fisher-z or GES with BIC."""
    if method not in METHODS:
        raise ValueError(f"Unknown discovery method {method!r}: choose one of {', '.join(METHODS)}.")
    alpha = check_alpha(alpha)
    z = np.asarray(z, float)
    if z.ndim != 2 or len(z) < z.shape[1] + 3:
        raise ValueError(f"Discovery needs more samples than variables (got {len(z)} samples of {z.shape[-1]}).")
    z = (z - z.mean(0)) / (z.std(0) + 1e-12)
    with contextlib.redirect_stdout(io.StringIO()):
        if method == "pc":
            from causallearn.search.ConstraintBased.PC import pc

            g = pc(z, alpha, "fisherz", stable=True, show_progress=False, verbose=False).G.graph
        else:
            from causallearn.search.ScoreBased.GES import ges

            g = ges(z, score_func="local_score_BIC")["G"].graph
    return causallearn_to_adjacency(g)


def interventional_descendants(z1: np.ndarray, z2: np.ndarray, targets: np.ndarray, threshold: float = 0.25):
    """Bool (d,d): D[i,j] = intervening on i moves j. From pairs (z1, z2) with target per pair (-1 none):
    j counts as a descendant of i when the mean |z2_j - z1_j| over pairs targeting i exceeds `threshold`
    observational standard deviations of z_j (non-descendants do not move: the noise is shared)."""
    z1, z2 = np.asarray(z1, float), np.asarray(z2, float)
    d = z1.shape[1]
    sd = z1.std(0) + 1e-12
    out = np.zeros((d, d), bool)
    for i in range(d):
        hit = targets == i
        if hit.sum() < 5:
            continue
        eff = np.abs(z2[hit] - z1[hit]).mean(0) / sd
        out[i] = eff > threshold
        out[i, i] = False
    return out


def orient_with_interventions(cpdag: np.ndarray, desc: np.ndarray) -> np.ndarray:
    """Orient every edge i - j of a skeleton as i -> j when j moves under do(i) but i not under do(j)."""
    a = np.asarray(cpdag).copy()
    d = a.shape[0]
    for i in range(d):
        for j in range(i + 1, d):
            if not (a[i, j] or a[j, i]):
                continue
            if desc[i, j] and not desc[j, i]:
                a[i, j], a[j, i] = 1, 0
            elif desc[j, i] and not desc[i, j]:
                a[i, j], a[j, i] = 0, 1
    return a
