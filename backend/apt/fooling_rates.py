"""Fooling rates of the attacks on held-out digits: one row per (mode, eps, classifier).

The model card's evaluation attacks the `N_EVAL` test digits `test_set(N_EVAL, EVAL_SEED)` once, with
settings chosen on `validation_set(N_VAL, VAL_SEED)` (other test-split digits); the page's "Test digit"
source offers the headline digits. Every row reports the fooling rate and the fooled-and-kept rate: the
attacked classifier is wrong and the independent judge (`backend.apt.judge`) re-reading the attacked
image still reads the true class.
"""

from __future__ import annotations

import dataclasses
import time

import numpy as np

from backend.apt import metrics as M
from backend.apt.attacks import DEFAULT_EPS, AttackResult, attack, fools, invert_many, pgd
from backend.apt.inference import classify_all
from backend.apt.inputs import apt_settings, check_classifier, check_mode
from backend.apt.judge import judge_probs
from backend.apt.loading import load_models
from backend.core.progress import as_progress

N_EVAL = 100   # held-out test digits of the card's attack evaluation
EVAL_SEED = 1  # which ones: test_set(N_EVAL, EVAL_SEED)
N_VAL, VAL_SEED = 30, 2  # validation digits for every choice: validation_set(N_VAL, VAL_SEED)
PGD_EPS = (0.05, 0.1, 0.2, 0.3)  # the PGD rows of the batch table ([0, 1] units)


def with_pgd_on_top(res: AttackResult, eps: float, pgd_steps: int, seed: int) -> AttackResult:
    """The APT+PGD result derived from an APT result (PGD with `eps` around the APT image)."""
    adv = pgd(res.adversarial, res.label, res.classifier, eps=eps, steps=pgd_steps, target=res.target, seed=seed)
    probs_after = classify_all(adv)
    metrics = {**res.metrics, **M.change_metrics(res.original, adv)}
    return dataclasses.replace(res, adversarial=adv, probs_after=probs_after, mode="apt+pgd", metrics=metrics,
                               success=fools(probs_after[res.classifier], res.label, res.target), frames=[],
                               edits={}, judge_after=judge_probs(adv[None])[0])


def _attack_all(images, labels, c: str, modes, eps, pgd_eps, steps, seed, pgd_steps, settings, p, k0: int):
    """Every mode on every image against classifier `c`: ({(mode, eps): [AttackResult]}, {...: seconds})."""
    keys = [(m, e) for m in modes for e in ((None,) if m == "apt" else (eps,) if m == "apt+pgd" else pgd_eps)]
    recs = {k: [] for k in keys}
    secs = dict.fromkeys(keys, 0.0)
    for i, (img, lab) in enumerate(zip(images, labels)):
        p.update(k0 + i, k0 + len(images), f"attacking {c}: image {i + 1}/{len(images)}")
        apt_res, apt_secs = None, 0.0
        for mode, e in keys:
            t0 = time.time()
            if mode == "apt+pgd" and apt_res is not None:
                r = with_pgd_on_top(apt_res, e, pgd_steps, seed)
                secs[(mode, e)] += apt_secs
            else:
                r = attack(img, int(lab), classifier=c, mode=mode, steps=steps, seed=seed, eps=e or eps,
                           pgd_steps=pgd_steps, edits=False, **settings)
            if mode == "apt":
                apt_res, apt_secs = r, time.time() - t0
            secs[(mode, e)] += time.time() - t0
            recs[(mode, e)].append(r)
    return recs, secs


def batch_evaluate(n: int = 20, seed: int = EVAL_SEED, classifiers=None, modes=("apt", "pgd"),
                   eps: float = DEFAULT_EPS, steps: int | None = None, progress=None, pgd_steps: int = 40,
                   pgd_eps=None, images=None, **settings) -> list[dict]:
    """Attack `n` held-out test digits (or the given `images` = (uint8 images, labels)) with each mode
    against each classifier.

    Returns one row per (mode, eps, classifier): fooling rate and fooled-and-kept rate among eligible
    images (original and, for APT, pivot classified correctly), n eligible, the judge's accuracy on the
    attacked images, mean SSIM / L2 / L∞ / high-frequency share, transfer fooling rate on every other
    classifier (among images it classified correctly), seconds per image. "pgd" runs at every eps of
    `pgd_eps` (default: `eps` alone); "apt+pgd" at `eps`, reusing the APT run of the same image.
    """
    from backend.apt.data import test_set

    if images is None:
        if not 1 <= int(n) <= 450:
            raise ValueError("Evaluate between 1 and 450 test images.")
        images, labels = test_set(int(n), seed)
    else:
        images, labels = images
    clfs = [check_classifier(c) for c in (classifiers or load_models().classifiers)]
    modes = tuple(check_mode(m) for m in modes)
    pgd_eps = tuple(pgd_eps or (eps,))
    p = as_progress(progress)
    if any(mo != "pgd" for mo in modes):
        p.update(0, 1, f"inverting {len(images)} digits")
        invert_many(images, labels, apt_settings(steps, **settings))
    rows = []
    for j, c in enumerate(clfs):
        recs, secs = _attack_all(images, labels, c, modes, eps, pgd_eps, steps, seed, pgd_steps, settings, p,
                                 j * len(images))
        rows += [summarise(r, mode, c, e, secs[(mode, e)] / len(images)) for (mode, e), r in recs.items()]
    p.update(1, 1, "done")
    return rows


def _mean(recs: list, key: str) -> float:
    return float(np.mean([r.metrics[key] for r in recs])) if recs else float("nan")


def summarise(recs: list, mode: str, classifier: str, eps: float, sec_per_image: float) -> dict:
    """One table row from the attack results of one mode against one classifier."""
    elig = [r for r in recs if r.eligible]
    ok = [r for r in elig if r.success]
    row = {
        "attack": mode if mode == "apt" else f"{mode} ε={eps:g}", "mode": mode, "classifier": classifier, "eps": eps if mode != "apt" else None,
        "n": len(recs), "n_eligible": len(elig),
        "fooling_rate": M.fooling_rate([r.success for r in elig]) if elig else float("nan"),
        "fooled_and_kept": M.fooling_rate([r.fooled_and_kept for r in elig]) if elig else float("nan"),
        "judge_kept": M.fooling_rate([r.kept for r in elig]) if elig else float("nan"),
        "ssim": _mean(elig, "ssim"), "ssim_fooled": _mean(ok, "ssim"), "l2": _mean(elig, "l2"),
        "linf": _mean(elig, "linf"), "high_freq_share": _mean(elig, "high_freq_share"),
        "steps": float(np.mean([r.steps_used for r in elig])) if elig else float("nan"),
        "sec_per_image": float(sec_per_image),
    }
    for other in (recs[0].probs_before if recs else ()):
        if other != classifier:
            base = [r for r in elig if int(np.argmax(r.probs_before[other])) == r.label]
            row[f"transfer_{other}"] = float(np.mean([r.transfer[other] for r in base])) if base else float("nan")
    if elig and "pivot_psnr" in elig[0].metrics:
        row["pivot_psnr"] = _mean(recs, "pivot_psnr")
        row["rmse_change_other_latents"] = _mean(elig, "rmse_change_other_latents")
    return row
