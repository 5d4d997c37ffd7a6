"""The DCI-ES formulas on an importance matrix and on loss-capacity curves.

D and C follow Eastwood & Williams (ICLR 2018) as ported by disentanglement_lib and DCI-ES
(`metrics/dci.py`): entropies of the row- and column-normalised importance matrix, weighted by
importance. E follows DCI-ES (Eastwood et al., ICLR 2023; `metrics/explitcitness.py`): one minus the
area above a loss-capacity curve's running minimum, normalised by the triangle with the factor's
baseline loss. S is the relative size K / L. Everything here is plain numpy, short enough to check by eye.
"""

from __future__ import annotations

import numpy as np

EPS = 1e-11  # as scipy.stats.entropy(R.T + 1e-11) in disentanglement_lib / DCI-ES


def _entropy(p: np.ndarray, base: int, axis: int) -> np.ndarray:
    """Shannon entropy in `base` of non-negative weights along `axis` (normalised first)."""
    p = p + EPS
    p = p / p.sum(axis=axis, keepdims=True)
    return -(p * np.log(p)).sum(axis=axis) / np.log(base)


def _check_importance(R) -> np.ndarray:
    R = np.abs(np.asarray(R, dtype=float))
    if R.ndim != 2 or R.size == 0:
        raise ValueError(f"The importance matrix must be 2-D (codes × factors); got shape {R.shape}.")
    return R


def disentanglement_per_code(R) -> np.ndarray:
    """D_i = 1 − H_K(P_i·) with P_ij = R_ij / Σ_k R_ik (one score per code dimension)."""
    R = _check_importance(R)
    L, K = R.shape
    if K == 1:
        return np.ones(L)
    return 1.0 - _entropy(R, K, axis=1)


def disentanglement(R) -> float:
    """D = Σ_i ρ_i D_i with ρ_i = Σ_j R_ij / Σ R (unused code dimensions weigh nothing)."""
    R = _check_importance(R)
    total = R.sum()
    if total <= 0:
        return 0.0
    rho = R.sum(axis=1) / total
    return float((rho * disentanglement_per_code(R)).sum())


def completeness_per_factor(R) -> np.ndarray:
    """C_j = 1 − H_L(P̃_·j) with P̃_ij = R_ij / Σ_k R_kj (one score per factor)."""
    R = _check_importance(R)
    L, K = R.shape
    if L == 1:
        return np.ones(K)
    return 1.0 - _entropy(R, L, axis=0)


def completeness(R, weighted: bool = True) -> float:
    """C weighted by factor importance (DCI-ES, disentanglement_lib); `weighted=False`: plain mean (qedr)."""
    R = _check_importance(R)
    c = completeness_per_factor(R)
    if not weighted:
        return float(c.mean())
    total = R.sum()
    if total <= 0:
        return 0.0
    return float((R.sum(axis=0) / total * c).sum())


def running_min(losses) -> np.ndarray:
    """Best loss seen up to each capacity (DCI-ES: y[i] = min(y[:i+1]))."""
    return np.minimum.accumulate(np.asarray(losses, dtype=float))


def explicitness(capacities, losses, baseline: float = 1.0, lstar: float | None = None) -> float:
    """E = 1 − AULCC / Z: area above the curve's own minimum over the triangle ½·Δκ·b.

    `capacities` is the x axis as plotted (tree depth, or log #parameters), increasing; `losses` the
    test losses (1 − R², 1 − accuracy); `baseline` b the loss of the best input-independent predictor.
    With `lstar=None` the area is taken above the curve's own minimum, as in DCI-ES; pass `lstar=0.0`
    for the stricter variant whose area is taken above zero loss (a flat but poor curve then scores low).
    The normaliser assumes ℓ* = 0 as the DCI-ES code does ("used in the iclr paper").
    """
    x = np.asarray(capacities, dtype=float)
    y = running_min(losses)
    if x.ndim != 1 or x.shape != y.shape:
        raise ValueError("capacities and losses must be 1-D arrays of the same length.")
    if len(x) < 2:
        raise ValueError("A loss-capacity curve needs at least 2 capacities.")
    if np.any(np.diff(x) <= 0):
        raise ValueError("Capacities must be strictly increasing.")
    if baseline <= 0:
        raise ValueError("The baseline loss must be positive.")
    floor = y.min() if lstar is None else float(lstar)
    area = np.trapezoid(y - floor, x)
    return float(1.0 - 2.0 * area / ((x[-1] - x[0]) * baseline))


def size(n_codes: int, n_factors: int) -> float:
    """S = K / L: 1 for a code with one dimension per factor, < 1 for an over-complete code."""
    if n_codes < 1 or n_factors < 1:
        raise ValueError("Size needs at least one code dimension and one factor.")
    return float(n_factors / n_codes)
