"""`python -m backend.bench apt`: seconds per APT attack (inversion + tuning, default settings) and per
PGD attack (40 steps) on the shipped models, per classifier, on held-out test digits.

The baseline is PGD measured in the same run; `ratio` = APT seconds / PGD seconds. One APT attack
here is a full single-image call as the page makes it (pivot inversion, tuning with early stop, latent
edits and the locality check); the issue's target is under 20 s on 2 CPU cores.
"""

from __future__ import annotations

import time

import numpy as np


def run(quick: bool = False) -> list[dict]:
    from backend.apt import CLASSIFIERS, DEFAULT_EPS, attack, forget_pivots, load_models, pgd, test_set
    from backend.core.device import device_info

    t0 = time.time()
    load_models()
    load_s = time.time() - t0
    n = 2 if quick else 5
    images, labels = test_set(n, seed=3)
    rows = [{"bench": "load models (first call)", "value": load_s, "unit": "s", "device": device_info()}]
    for c in CLASSIFIERS:
        t_apt, steps, ok = [], [], []
        for img, y in zip(images, labels):
            forget_pivots()  # time the inversion too
            t = time.time()
            r = attack(img, int(y), classifier=c, seed=0)
            t_apt.append(time.time() - t)
            steps.append(r.steps_used)
            ok.append(r.success)
        t_pgd = []
        for img, y in zip(images, labels):
            t = time.time()
            pgd(img, int(y), classifier=c, eps=DEFAULT_EPS, steps=40)
            t_pgd.append(time.time() - t)
        a, p = float(np.median(t_apt)), float(np.median(t_pgd))
        rows.append({"bench": f"APT attack vs {c}", "value": a, "unit": "s/image (median)", "n": n,
                     "mean_tuning_steps": float(np.mean(steps)), "fooled": float(np.mean(ok)),
                     "baseline": "PGD-40", "ratio": a / p if p > 0 else float("nan"), "target": "< 20 s"})
        rows.append({"bench": f"PGD-40 attack vs {c}", "value": p, "unit": "s/image (median)", "n": n,
                     "eps": DEFAULT_EPS})
    return rows
