"""Per-model metrics on every domain (accuracy, ECE, NLL), PGD accuracy, corruption accuracy, and the
probit-scale fits of OOD vs ID accuracy over a zoo (Wenzel et al., NeurIPS 2022, section 3).
"""

from __future__ import annotations

import functools

import numpy as np

from backend.robustness import data
from backend.robustness.shifts import KINDS, SEVERITIES, shift

N_SHIFTED = 200  # test images per synthetic domain: 200 evenly spaced ID test images (the MNIST file is sorted
# by class, so evenly spaced picks give 20 of each digit)
N_PGD = 200
PGD_EPS, PGD_STEPS = 0.1, 5
ECE_BINS = 15
CHANCE = 0.1


def ece(probs: np.ndarray, y: np.ndarray, bins: int = ECE_BINS) -> float:
    """Expected calibration error: |accuracy - confidence| weighted over equal-width confidence bins."""
    conf, pred = probs.max(1), probs.argmax(1)
    edges = np.linspace(0, 1, bins + 1)
    idx = np.clip(np.digitize(conf, edges[1:-1]), 0, bins - 1)
    total = 0.0
    for b in range(bins):
        m = idx == b
        if m.any():
            total += m.mean() * abs((pred[m] == y[m]).mean() - conf[m].mean())
    return float(total)


def reliability(probs: np.ndarray, y: np.ndarray, bins: int = 10) -> dict:
    """Per-bin confidence, accuracy and count (for a reliability diagram)."""
    conf, pred = probs.max(1), probs.argmax(1)
    edges = np.linspace(0, 1, bins + 1)
    idx = np.clip(np.digitize(conf, edges[1:-1]), 0, bins - 1)
    out = {"confidence": [], "accuracy": [], "count": []}
    for b in range(bins):
        m = idx == b
        out["confidence"].append(float(conf[m].mean()) if m.any() else float((edges[b] + edges[b + 1]) / 2))
        out["accuracy"].append(float((pred[m] == y[m]).mean()) if m.any() else float("nan"))
        out["count"].append(int(m.sum()))
    return out


@functools.lru_cache(maxsize=3)
def eval_sets(id_domain: str) -> dict:
    """domain name -> (x, y) for one ID domain: the three natural test sets and the 40 synthetic ones
    (200 evenly spaced ID test images, shifted with seed 0)."""
    sets = {d: data.load(d, "test") for d in data.NATURAL}
    x, y = sets[id_domain]
    idx = spread(len(y), N_SHIFTED)
    for k in KINDS:
        for s in SEVERITIES:
            sets[f"{k}/{s}"] = (shift(x[idx], k, s, seed=0), y[idx])
    return sets


def spread(n: int, m: int) -> np.ndarray:
    """`m` evenly spaced indices of range(n)."""
    return np.linspace(0, n - 1, m).round().astype(int)


def predict(model, x: np.ndarray) -> np.ndarray:
    """Softmax probabilities (N, 10) of float grey images (N, 16, 16)."""
    import torch

    with torch.no_grad():
        return torch.softmax(model(torch.as_tensor(x)[:, None]), -1).numpy()


def pgd_accuracy(model, x: np.ndarray, y: np.ndarray, seed: int = 0) -> float:
    """Accuracy under an L-inf PGD attack (eps 0.1 on [0, 1], 5 steps of eps/2, random start)."""
    import torch
    import torch.nn.functional as F

    g = torch.Generator().manual_seed(seed)
    x0, yt = torch.as_tensor(x)[:, None], torch.as_tensor(y)
    adv = (x0 + PGD_EPS * (2 * torch.rand(x0.shape, generator=g) - 1)).clamp(0, 1)
    for p in model.parameters():
        p.requires_grad_(False)
    for _ in range(PGD_STEPS):
        adv.requires_grad_(True)
        loss = F.cross_entropy(model(adv), yt)
        (grad,) = torch.autograd.grad(loss, adv)
        adv = torch.min(torch.max(adv.detach() + PGD_EPS / 2 * grad.sign(), x0 - PGD_EPS), x0 + PGD_EPS).clamp(0, 1)
    with torch.no_grad():
        return float((model(adv).argmax(1) == yt).float().mean())


def evaluate_model(model, id_domain: str) -> dict:
    """Flat metrics of one model: acc/ece/nll per domain, pgd_acc and corruption_acc (mean over the 40
    synthetic domains)."""
    out = {}
    for name, (x, y) in eval_sets(id_domain).items():
        p = predict(model, x)
        out[f"acc:{name}"] = float((p.argmax(1) == y).mean())
        out[f"ece:{name}"] = ece(p, y)
        out[f"nll:{name}"] = float(-np.log(np.clip(p[np.arange(len(y)), y], 1e-12, 1)).mean())
    out["corruption_acc"] = float(np.mean([out[f"acc:{k}/{s}"] for k in KINDS for s in SEVERITIES]))
    x, y = data.load(id_domain, "test")
    idx = spread(len(y), N_PGD)
    out["pgd_acc"] = pgd_accuracy(model, x[idx], y[idx])
    return out


# -- probit fits over a zoo ------------------------------------------------------------------------
def probit(p):
    from scipy.stats import norm

    return norm.ppf(np.clip(np.asarray(p, float), 1e-3, 1 - 1e-3))


def _fit(x, y) -> tuple[float, float, float, float]:
    from scipy.stats import kendalltau

    slope, intercept = np.polyfit(x, y, 1)
    r = np.corrcoef(x, y)[0, 1] if np.std(x) > 0 and np.std(y) > 0 else 0.0
    tau = kendalltau(x, y).statistic if len(x) > 2 else float("nan")
    return float(slope), float(intercept), float(r**2), float(tau)


def probit_fit(id_acc, ood_acc, n_boot: int = 500, seed: int = 0) -> dict:
    """Linear fit of probit(OOD acc) on probit(ID acc): slope, intercept, R^2, Kendall tau, and 95%
    bootstrap intervals (models resampled with replacement)."""
    xa, ya = np.asarray(id_acc, float), np.asarray(ood_acc, float)
    if len(xa) < 3:
        raise ValueError(f"A fit needs at least 3 models; this selection has {len(xa)}.")
    x, y = probit(xa), probit(ya)
    slope, intercept, r2, tau = _fit(x, y)
    rng = np.random.default_rng(seed)
    boots = []
    for _ in range(n_boot):
        i = rng.integers(0, len(x), len(x))
        if np.std(x[i]) > 0:
            boots.append(_fit(x[i], y[i]))
    b = np.array(boots).reshape(-1, 4)
    ci = {} if not len(b) else {name: [float(np.nanpercentile(b[:, j], 2.5)), float(np.nanpercentile(b[:, j], 97.5))]
          for j, name in enumerate(("slope", "intercept", "r2", "tau"))}
    return {"slope": slope, "intercept": intercept, "r2": r2, "tau": tau, "intervals": ci, "n": int(len(x))}
