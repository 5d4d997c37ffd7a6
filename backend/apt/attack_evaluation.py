"""The generator card's attack evaluation: APT, PGD and APT+PGD against every classifier on held-out
digits, and a sweep of APT's adversarial weight; the full tables go to the checkpoint's "evaluation" entry."""

from __future__ import annotations

from dataclasses import asdict

from backend.apt.attacks import forget_pivots
from backend.apt.fooling_rates import batch_evaluate
from backend.apt.inputs import apt_settings
from backend.apt.loading import models_in_use

COUNTING = "fooling rate among images whose original (and, for APT, pivot) the attacked classifier got right"

LIMITATIONS = [
    "The generator is a small cVAE decoder trained on 8×8 scans upsampled to 32×32, not a StyleGAN on faces.",
    "No realism (discriminator) term: the paper keeps tuned images realistic through the GAN; here only MSE, "
    "the perceptual distance in P and PTI's locality term hold the image near the digit.",
    "Class preservation is not measured: an image counts as fooling once the classifier leaves the label, "
    "whether or not it still shows that digit.",
    "APT's change is not norm-bounded (mean L∞ ≈ 0.35–0.43) while PGD is held to eps 0.1, so the fooling "
    "rates compare attacks at different budgets.",
    "The perceptual distance uses a project-trained digit CNN P, not LPIPS (its ImageNet weights are unavailable).",
]


def _settings(config: dict):
    """The APT settings of the evaluation: the defaults, unless the config caps tuning or inversion steps."""
    return apt_settings(config.get("apt_steps"), inv_steps=config.get("inv_steps"))


def card_number(v):
    """A card value: finite floats rounded, NaN (no eligible image) as None."""
    return None if v is None or v != v else round(float(v), 4)


def attack_rows(config: dict, progress=None) -> tuple[list, list]:
    """(rows of every mode × classifier on `n_eval` digits, sweep rows over `sweep` adversarial weights)."""
    common = {"seed": config["eval_seed"], "eps": config["eps"], "steps": config.get("apt_steps"),
              "pgd_steps": config["pgd_steps"], "inv_steps": config.get("inv_steps")}
    rows = batch_evaluate(config["n_eval"], modes=("apt", "pgd", "apt+pgd"), progress=progress, **common)
    sweep = []
    for c in config["sweep_classifiers"]:
        for w in config["sweep"]:
            r = batch_evaluate(config["n_sweep"], classifiers=[c], modes=("apt",), adv_weight=w, **common)[0]
            sweep.append({**r, "adv_weight": w})
    return rows, sweep


def card_fields(rows: list, config: dict) -> dict:
    """metrics, baselines, targets, headline and readout of the generator card from the attack rows."""
    fr = {(r["mode"], r["classifier"]): r for r in rows}
    classifiers = list(dict.fromkeys(r["classifier"] for r in rows))
    eps = config["eps"]
    metrics = {}
    for (mode, c), r in fr.items():
        tag = mode.replace("+", "_")
        metrics[f"{tag}_fooling_rate_{c}"] = r["fooling_rate"]
        metrics[f"{tag}_ssim_{c}"] = r["ssim"]
    apt_cnn = fr[("apt", "cnn")]
    metrics["apt_pivot_psnr_db"] = apt_cnn.get("pivot_psnr")
    metrics["apt_high_freq_share_cnn"] = apt_cnn["high_freq_share"]
    metrics["pgd_high_freq_share_cnn"] = fr[("pgd", "cnn")]["high_freq_share"]
    metrics["apt_rmse_change_other_latents_cnn"] = apt_cnn.get("rmse_change_other_latents")
    baselines = {f"pgd_eps{eps}_fooling_rate_{c}": fr[("pgd", c)]["fooling_rate"] for c in classifiers}
    rob = fr[("apt", "robust")]
    headline = {"metric": "apt_fooling_rate_robust",
                "label": f"APT fools the PGD-trained CNN ({rob['n_eligible']} test digits)",
                "value": rob["fooling_rate"], "baseline": fr[("pgd", "robust")]["fooling_rate"],
                "baseline_label": f"PGD-{config['pgd_steps']} at its training eps {eps}"}
    targets = [{"metric": "apt_fooling_rate_robust", "threshold": 0.9, "value": rob["fooling_rate"]},
               {"metric": "apt_ssim_robust", "threshold": 0.7, "value": rob["ssim"]}]
    s = _settings(config)
    readout = (f"APT with default settings (inversion {s.inv_steps} steps, tuning ≤ {s.steps} steps, adversarial "
               f"weight {s.adv_weight}, early stop at the first fooling image) and PGD-{config['pgd_steps']} at "
               f"eps {eps}, on test_set({config['n_eval']}, seed={config['eval_seed']}); {COUNTING}")
    return {"metrics": {k: card_number(v) for k, v in metrics.items()},
            "baselines": {k: card_number(v) for k, v in baselines.items()},
            "targets": [{**t, "value": card_number(t["value"])} for t in targets],
            "headline": {**headline, "value": card_number(headline["value"]),
                         "baseline": card_number(headline["baseline"])},
            "readout": readout}


def evaluate_attacks(models, config: dict, progress=None) -> dict:
    """Card fields plus the "evaluation" detail (attack table and sweep) for the generator in `models`."""
    forget_pivots()  # pivots belong to one generator
    with models_in_use(models):
        rows, sweep = attack_rows(config, progress)
    forget_pivots()
    s = _settings(config)
    evaluation = {"attacks": {"n_images": config["n_eval"], "test_set_seed": config["eval_seed"],
                              "eps": config["eps"], "counting": COUNTING, "apt_settings": asdict(s), "rows": rows},
                  "sweep": {"n_images": config["n_sweep"], "classifiers": list(config["sweep_classifiers"]),
                            "rows": sweep}}
    return {**card_fields(rows, config), "limitations": LIMITATIONS, "evaluation": evaluation}
