"""Likelihood evaluation for the DiffEnc page: per-image bits/dim with common random numbers (the same t and
noise for every model), per-term breakdown, the diffusion loss as a function of t, the paired gap
DiffEnc - size-matched VDM over seeds, and the model cards' metrics.
"""

from __future__ import annotations

import math
import os
from pathlib import Path

import numpy as np
import torch

from backend.diffenc.model import diffusion_terms, to_unit

TERMS = ("diffusion", "latent", "recon")
SEEDS = (0, 1, 2)
N_FULL_TEST = 1000
T_GRID = np.linspace(0.0, 1.0, 26)[1:-1].round(4)


def crn_draws(n: int, repeats: int, seed: int, size: int = 14):
    """The common random numbers: for each repeat, one uniform t and one noise image per image index."""
    out = []
    for r in range(repeats):
        g = torch.Generator().manual_seed(int(seed) * 1000 + r)
        out.append((torch.rand(n, generator=g), torch.randn((n, 1, size, size), generator=g)))
    return out


def bpd_terms(model, images: np.ndarray, repeats: int = 8, seed: int = 0, chunk: int = 250,
              progress=None) -> dict:
    """Per-image bits/dim averaged over `repeats` Monte Carlo draws: {"bpd": (N,), term: (N,), "bpd_draws": (R, N)}."""
    imgs = np.asarray(images, np.uint8)
    if imgs.ndim != 3:
        raise ValueError("Images must be an (N, 14, 14) array of grey levels 0-255.")
    from backend.core.progress import as_progress

    progress = as_progress(progress)
    x = to_unit(torch.from_numpy(imgs)[:, None])
    per_dim = math.log(2) * x[0].numel()
    draws = crn_draws(len(imgs), repeats, seed, imgs.shape[-1])
    sums = {k: np.zeros((repeats, len(imgs))) for k in TERMS}
    for r, (t, eps) in enumerate(draws):
        for i in range(0, len(imgs), chunk):
            sl = slice(i, i + chunk)
            terms = diffusion_terms(model, x[sl], t[sl], eps[sl])
            for k in TERMS:
                sums[k][r, sl] = terms[k].detach().numpy() / per_dim
        progress.update(r + 1, repeats, f"Monte Carlo draw {r + 1}/{repeats}")
    draws_bpd = sum(sums[k] for k in TERMS)
    return {"bpd": draws_bpd.mean(0), "bpd_draws": draws_bpd, **{k: v.mean(0) for k, v in sums.items()}}


def loss_vs_t(model, images: np.ndarray, seed: int = 0, t_grid=T_GRID) -> np.ndarray:
    """Mean diffusion-loss integrand (bits/dim) at each t of `t_grid`, the same noise at every t and model."""
    x = to_unit(torch.from_numpy(np.asarray(images, np.uint8))[:, None])
    eps = torch.randn(x.shape, generator=torch.Generator().manual_seed(int(seed)))
    per_dim = math.log(2) * x[0].numel()
    out = []
    for t in t_grid:
        tt = torch.full((len(x),), float(t))
        out.append(float(diffusion_terms(model, x, tt, eps)["diffusion"].mean()) / per_dim)
    return np.array(out)


def seed_dir(seed: int) -> Path | None:
    """Where seed `seed`'s checkpoints live: the shipped folder for seed 0, runs/diffenc-seedS otherwise."""
    from backend.core.registry import CHECKPOINT_DIR, ROOT

    if seed == 0:
        return Path(os.environ.get("DIFFENC_SEED0_DIR", CHECKPOINT_DIR))
    return ROOT / "runs" / f"diffenc-seed{seed}"


def runs_dir(seed: int) -> Path:
    """The training-state folder of seed `seed`'s runs (LATENTLAB_RUNS when the run was trained)."""
    from backend.core.registry import ROOT, RUNS_DIR

    if seed == 0:
        return Path(os.environ.get("DIFFENC_SEED0_RUNS", RUNS_DIR))
    return ROOT / "runs" / f"diffenc-seed{seed}" / "state"


def _saved_path(name: str, repeats: int, seed: int, directory: Path) -> Path:
    """Per-image test bpd saved by a run's evaluation (the comparison reuses it instead of recomputing)."""
    return Path(directory) / "diffenc-bpd" / f"{name}-r{repeats}-s{seed}.npy"


def load_weights(name: str, directory: Path):
    """The EMA weights a recipe wrote to `directory`, as a module; None when the file is missing."""
    from backend.diffenc.model import DiffusionModel

    pt = Path(directory) / f"{name}.pt"
    if not pt.exists():
        return None
    payload = torch.load(pt, map_location="cpu", weights_only=True)
    c = payload["config"]
    m = DiffusionModel(c["ch"], c["blocks"], c["enc_ch"], c["enc_layers"])
    m.load_state_dict(payload["state_dict"])
    return m.eval()


def paired_comparison(test: np.ndarray, repeats: int, seed: int) -> dict | None:
    """Per-seed test bpd of the three models (CRN) and the paired gap DiffEnc - size-matched VDM; None
    unless every seed of every model has been trained."""
    names = ("diffenc-vdm", "diffenc-vdm-matched", "diffenc")
    per = {n: [] for n in names}
    for s in SEEDS:
        for n in names:
            saved = _saved_path(n, repeats, seed, runs_dir(s))
            if saved.exists():
                per[n].append(np.load(saved))
                continue
            m = load_weights(n, seed_dir(s))
            if m is None:
                return None
            with torch.no_grad():
                per[n].append(bpd_terms(m, test, repeats, seed)["bpd"])
    out = {"per_seed_bpd": {n: [round(float(b.mean()), 4) for b in v] for n, v in per.items()}}
    for other, key in (("diffenc-vdm-matched", "gap_vs_matched"), ("diffenc-vdm", "gap_vs_vdm")):
        d = np.mean([a - b for a, b in zip(per["diffenc"], per[other], strict=True)], axis=0)  # per image
        seed_gaps = [float((a - b).mean()) for a, b in zip(per["diffenc"], per[other], strict=True)]
        se_img = float(d.std(ddof=1) / math.sqrt(len(d)))
        se_seed = float(np.std(seed_gaps, ddof=1) / math.sqrt(len(seed_gaps)))
        se = max(se_img, se_seed)
        out[key] = {"gap": round(float(d.mean()), 4), "se_images": round(se_img, 4), "se_seeds": round(se_seed, 4),
                    "se": round(se, 4), "per_seed": [round(g, 4) for g in seed_gaps],
                    "significant": bool(abs(d.mean()) > 2 * se)}
    return out


def evaluate_card(recipe, model) -> dict:
    """The card of one model: test bpd (CRN, `repeats` draws) with its terms, the categorical and zlib
    baselines, and (once all seeds exist) the per-seed figures and the paired gap DiffEnc - matched VDM."""
    from backend.diffenc.data import categorical_bpd, load_digits, zlib_bpd

    c = recipe.config
    data = load_digits()
    test = data["test"][0][: c["n_test"]]
    res = bpd_terms(model, test, c["repeats"], c["eval_seed"])
    n = len(test)
    if n == N_FULL_TEST:
        from backend.core.registry import RUNS_DIR

        path = _saved_path(recipe.name, c["repeats"], c["eval_seed"], RUNS_DIR)
        path.parent.mkdir(parents=True, exist_ok=True)
        np.save(path, res["bpd"])
    se = float(res["bpd"].std(ddof=1) / math.sqrt(n)) if n > 1 else 0.0
    cat = categorical_bpd(data["train"][0], test)
    metrics = {"test_bpd": float(res["bpd"].mean()), "test_bpd_se": se,
               "terms_bpd": {k: float(res[k].mean()) for k in TERMS}}
    baselines = {"categorical_per_pixel_bpd": cat, "zlib_bpd": zlib_bpd(test)}
    targets = [{"metric": "test_bpd", "threshold": 2.0, "value": metrics["test_bpd"], "direction": "<="},
               {"metric": "test_bpd below categorical baseline", "threshold": cat, "value": metrics["test_bpd"],
                "direction": "<="}]
    limitations = ["Trained a few thousand steps with a ~50k-parameter network on a shared CPU: far from converged, "
                   "so the absolute bpd is much worse than a long run would give."]
    comp = paired_comparison(test, c["repeats"], c["eval_seed"]) if n == N_FULL_TEST else None
    evaluation = {"t_grid": T_GRID.tolist(), "loss_vs_t": loss_vs_t(model, test[:100], c["eval_seed"]).tolist()}
    if comp is not None:
        metrics["per_seed_test_bpd"] = {f"{k}_seed{i}": v for k, vals in comp["per_seed_bpd"].items()
                                        for i, v in enumerate(vals)}
        for key in ("gap_vs_matched", "gap_vs_vdm"):
            g = comp[key]
            metrics[f"diffenc_minus_{key[7:]}_bpd"] = {"gap": g["gap"], "se": g["se"], "se_images": g["se_images"],
                                                         "se_seeds": g["se_seeds"],
                                                         "significant": float(g["significant"])}
        g = comp["gap_vs_matched"]
        targets.append({"metric": "paired SE of DiffEnc - matched VDM", "threshold": 0.005, "value": g["se"],
                        "direction": "<="})
        verdict = "significant" if g["significant"] else "not significant"
        limitations.append(f"DiffEnc - size-matched VDM = {g['gap']:+.4f} bpd (SE {g['se']:.4f}, 3 seeds, "
                           f"{n} test images, {c['repeats']} CRN draws): {verdict} at 2 SE.")
        evaluation["comparison"] = comp
    return {"metrics": metrics, "baselines": baselines, "targets": targets, "limitations": limitations,
            "headline": {"metric": "test_bpd", "label": "test bits/dim (lower is better)",
                         "value": round(metrics["test_bpd"], 4), "baseline": round(cat, 4),
                         "baseline_label": "per-pixel categorical"},
            "readout": (f"ELBO in bits/dim on {n} held-out test digits, {c['repeats']} Monte Carlo draws of (t, noise) "
                        f"per image, the same draws (seed {c['eval_seed']}) for every model; terms: diffusion "
                        "(continuous time), latent (KL at t=1), reconstruction (256-level decoder at t=0)"),
            "evaluation": evaluation}
