"""Fooling rates of the attacks on held-out test digits: one row per (mode, classifier).

The model card's evaluation attacks the `N_EVAL` test digits `test_set(N_EVAL, EVAL_SEED)`; the page's
"Test digit" source offers the same digits.
"""

from __future__ import annotations

import dataclasses
import time

import numpy as np

from backend.apt import metrics as M
from backend.apt.attacks import DEFAULT_EPS, AttackResult, attack, fools, invert_many, pgd
from backend.apt.inference import classify_all
from backend.apt.inputs import apt_settings, check_classifier, check_mode
from backend.apt.loading import CLASSIFIERS
from backend.core.progress import as_progress

N_EVAL = 100   # held-out test digits of the card's attack evaluation
EVAL_SEED = 1  # which ones: test_set(N_EVAL, EVAL_SEED)


def with_pgd_on_top(res: AttackResult, eps: float, pgd_steps: int, seed: int) -> AttackResult:
    """The APT+PGD result derived from an APT result (PGD with `eps` around the APT image)."""
    adv = pgd(res.adversarial, res.label, res.classifier, eps=eps, steps=pgd_steps, target=res.target, seed=seed)
    probs_after = classify_all(adv)
    metrics = {**res.metrics, **M.change_metrics(res.original, adv)}
    return dataclasses.replace(res, adversarial=adv, probs_after=probs_after, mode="apt+pgd", metrics=metrics,
                               success=fools(probs_after[res.classifier], res.label, res.target), frames=[],
                               edits={})


def _attack_all(images, labels, c: str, modes, eps, steps, seed, pgd_steps, settings, p, k0: int):
    """Every mode on every image against classifier `c`: ({mode: [AttackResult]}, {mode: seconds})."""
    recs = {m: [] for m in modes}
    secs = dict.fromkeys(modes, 0.0)
    for i, (img, lab) in enumerate(zip(images, labels)):
        p.update(k0 + i, k0 + len(images), f"attacking {c}: image {i + 1}/{len(images)}")
        apt_res, apt_secs = None, 0.0
        for mode in modes:
            t0 = time.time()
            if mode == "apt+pgd" and apt_res is not None:
                r = with_pgd_on_top(apt_res, eps, pgd_steps, seed)
                secs[mode] += apt_secs
            else:
                r = attack(img, int(lab), classifier=c, mode=mode, steps=steps, seed=seed, eps=eps,
                           pgd_steps=pgd_steps, edits=False, **settings)
            if mode == "apt":
                apt_res, apt_secs = r, time.time() - t0
            secs[mode] += time.time() - t0
            recs[mode].append(r)
    return recs, secs


def batch_evaluate(n: int = 20, seed: int = EVAL_SEED, classifiers=None, modes=("apt", "pgd"),
                   eps: float = DEFAULT_EPS, steps: int | None = None, progress=None, pgd_steps: int = 40,
                   **settings) -> list[dict]:
    """Attack `n` held-out test digits with each mode against each classifier.

    Returns one row per (mode, classifier): fooling rate among eligible images (original and, for APT,
    pivot classified correctly), n eligible, mean SSIM / L2 / L∞ / high-frequency share, transfer
    fooling rate on every other classifier (among images it classified correctly), seconds per image.
    "apt+pgd" reuses the APT run of the same image when "apt" is also asked for.
    """
    from backend.apt.data import test_set

    if not 1 <= int(n) <= 450:
        raise ValueError("Evaluate between 1 and 450 test images.")
    clfs = [check_classifier(c) for c in (classifiers or CLASSIFIERS)]
    modes = tuple(check_mode(m) for m in modes)
    images, labels = test_set(int(n), seed)
    p = as_progress(progress)
    if any(mo != "pgd" for mo in modes):
        p.update(0, 1, f"inverting {len(images)} digits")
        invert_many(images, labels, apt_settings(steps, **settings))
    rows = []
    for j, c in enumerate(clfs):
        recs, secs = _attack_all(images, labels, c, modes, eps, steps, seed, pgd_steps, settings, p, j * len(images))
        rows += [summarise(recs[mode], mode, c, eps, secs[mode] / len(images)) for mode in modes]
    p.update(1, 1, "done")
    return rows


def _mean(recs: list, key: str) -> float:
    return float(np.mean([r.metrics[key] for r in recs])) if recs else float("nan")


def summarise(recs: list, mode: str, classifier: str, eps: float, sec_per_image: float) -> dict:
    """One table row from the attack results of one mode against one classifier."""
    elig = [r for r in recs if r.eligible]
    ok = [r for r in elig if r.success]
    row = {
        "mode": mode, "classifier": classifier, "eps": eps if mode != "apt" else None,
        "n": len(recs), "n_eligible": len(elig),
        "fooling_rate": M.fooling_rate([r.success for r in elig]) if elig else float("nan"),
        "ssim": _mean(elig, "ssim"), "ssim_fooled": _mean(ok, "ssim"), "l2": _mean(elig, "l2"),
        "linf": _mean(elig, "linf"), "high_freq_share": _mean(elig, "high_freq_share"),
        "steps": float(np.mean([r.steps_used for r in elig])) if elig else float("nan"),
        "sec_per_image": float(sec_per_image),
    }
    for other in CLASSIFIERS:
        if other != classifier:
            base = [r for r in elig if int(np.argmax(r.probs_before[other])) == r.label]
            row[f"transfer_{other}"] = float(np.mean([r.transfer[other] for r in base])) if base else float("nan")
    if elig and "pivot_psnr" in elig[0].metrics:
        row["pivot_psnr"] = _mean(recs, "pivot_psnr")
        row["rmse_change_other_latents"] = _mean(elig, "rmse_change_other_latents")
    return row
