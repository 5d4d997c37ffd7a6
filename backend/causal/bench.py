"""`python -m backend.bench causal`: full-pipeline seconds on the default graph per learner (shipped
checkpoints; the oracle is the no-learning baseline of the same run), and discovery time alone per
algorithm at 5 / 10 / 20 variables x 5,000 samples."""

from __future__ import annotations

import time

import numpy as np


def run(quick: bool = False) -> list[dict]:
    from backend.causal import LEARNERS, run_pipeline, shipped_available
    from backend.causal import data as D
    from backend.causal import discovery as DI

    rows = []
    n = 1000 if quick else 5000
    base = None
    for learner in ("oracle", *[ln for ln in LEARNERS if ln != "oracle"]):
        if learner != "oracle" and not shipped_available(learner):
            rows.append({"bench": f"pipeline {learner}", "value": None, "unit": "s", "note": "not trained"})
            continue
        run_pipeline(None, learner=learner, n_pairs=200, with_dci=False)  # warm: model load, imports
        t = time.perf_counter()
        r = run_pipeline(None, learner=learner, n_pairs=n, use_interventions=True)
        dt = time.perf_counter() - t
        if learner == "oracle":
            base = dt
        rows.append({"bench": f"pipeline {learner} (default graph, {n} pairs, PC+interventions, DCI)",
                     "value": round(dt, 3), "unit": "s", "vs_oracle": round(dt / base, 2) if base else None,
                     "mcc": round(r.mcc, 3), "shd": r.shd, "oracle_shd": r.oracle_shd,
                     "target_s": 10.0})
    for d in (5, 10) if quick else (5, 10, 20):
        a = D.template("random", min(d, 8), seed=0) if d <= 8 else _er(d)
        scm = _linear_sample(a, n)
        for method in DI.METHODS:
            t = time.perf_counter()
            DI.discover(scm, method, 0.01)
            rows.append({"bench": f"discovery {method} d={d} n={n}", "value": round(time.perf_counter() - t, 3),
                         "unit": "s", "target_s": 2.0 if d == 10 else None})
    return rows


def _er(d: int, seed: int = 0, p: float = 0.2) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return np.triu(rng.random((d, d)) < p, 1).astype(int)


def _linear_sample(a: np.ndarray, n: int, seed: int = 0) -> np.ndarray:
    """Samples of a linear Gaussian SEM on any DAG size (the page's SCMs stop at 8 nodes)."""
    rng = np.random.default_rng(seed)
    d = a.shape[0]
    w = a * rng.choice([-1, 1], (d, d)) * rng.uniform(0.5, 1.5, (d, d))
    z = np.zeros((n, d))
    eps = rng.standard_normal((n, d))
    for j in range(d):  # a is upper-triangular here, so index order is topological
        z[:, j] = z @ w[:, j] + eps[:, j]
    return z
