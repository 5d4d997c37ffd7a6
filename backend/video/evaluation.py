"""Held-out evaluation of a video model: the model card's numbers and the per-frame detail behind them.

Three tasks on clips from seeds the trainer never draws (validation: `VAL_SEED`; the card's test clips:
`TEST_SEED`), each scored on the generated pixels against the copy baselines: every 4th frame given
(`interp4`), the first 4 given with the next 4 scored (`predict4`), the first and last 2 given (`ends2`).
Each task's gain over its baseline (`GAINS`) comes with a 95 % bootstrap interval over clips of the paired
per-clip PSNR difference. On `predict4`, the most uncertain task, best-of-N PSNR and sample diversity.
"""

from __future__ import annotations

import numpy as np

from backend.video.clips import preset_known
from backend.video.data import TEST_SEED, make_videos
from backend.video.metrics import BASELINES, baseline, clip_scores, diversity, psnr

# task -> (preset of given frames, frames scored among the generated ones (None: all of them))
TASKS = {
    "interp4": ("upsampling", None),
    "predict4": ("prediction", lambda T: (np.arange(T) >= 4) & (np.arange(T) < 8)),
    "ends2": ("infilling", None),
}
SCORES = ("psnr", "ssim", "centroid_px")
GAINS = {"interp4": "linear", "predict4": "last", "ends2": "linear"}  # task -> the baseline its gain is over


def bootstrap_interval(diff, n_boot: int = 2000, seed: int = 0, level: float = 0.95) -> dict:
    """Mean of per-clip paired differences and its percentile bootstrap interval over clips."""
    d = np.asarray(diff, np.float64)
    means = d[np.random.default_rng(seed).integers(0, len(d), (n_boot, len(d)))].mean(1)
    lo, hi = np.quantile(means, [(1 - level) / 2, (1 + level) / 2])
    return {"mean": float(d.mean()), "ci_low": float(lo), "ci_high": float(hi)}


def _task_scores(model, clips, trajs, task: str, steps: int, seed: int, progress=None, scores=SCORES):
    """Mean scores of the model and of each baseline on one task, their per-frame PSNR curves and the
    paired per-clip PSNR gain over the task's baseline (mean and 95 % interval)."""
    T, R = model.num_frames, model.resolution
    preset, scored_fn = TASKS[task]
    known = preset_known(preset, T)
    scored = ~known if scored_fn is None else scored_fn(T) & ~known
    masks = np.repeat(~known[None, :, None, None], len(clips), 0) * np.ones((1, T, R, R), bool)
    preds = model.batch_infill(clips, masks, steps=steps, seed=seed, progress=progress)
    rows = {"model": [], **{b: [] for b in BASELINES}}
    for i, clip in enumerate(clips):  # frames outside `scored` count as given for scoring
        centers, ssim = (trajs[i].centers if "centroid_px" in scores else None), "ssim" in scores
        rows["model"].append(clip_scores(preds[i], clip, ~scored, centers, with_ssim=ssim))
        for b in BASELINES:
            rows[b].append(clip_scores(baseline(clip, known, b), clip, ~scored, centers, with_ssim=ssim))
    means = {who: {f"{task}_{k}": float(np.mean([r[k] for r in rs])) for k in scores} for who, rs in rows.items()}
    curves = {who: _mean_curve(np.stack([r["per_frame_psnr"] for r in rs])) for who, rs in rows.items()}
    gain = bootstrap_interval([m["psnr"] - b["psnr"] for m, b in zip(rows["model"], rows[GAINS[task]])])
    return means, curves, gain


def _mean_curve(per_clip: np.ndarray) -> list:
    """Mean over clips of per-frame values (N, T); None for frames never scored."""
    scored = ~np.isnan(per_clip)
    sums, counts = np.where(scored, per_clip, 0.0).sum(0), scored.sum(0)
    return [round(float(s / n), 3) if n else None for s, n in zip(sums, counts)]


def _best_of(model, clips, steps: int, seed: int, best_of: int, n_best: int) -> tuple[float, float]:
    """Mean best-of-N PSNR and mean diversity of N samples on `predict4`, over the first `n_best` clips."""
    T, R = model.num_frames, model.resolution
    known = preset_known(TASKS["predict4"][0], T)
    scored = TASKS["predict4"][1](T) & ~known
    gen = np.repeat(scored[:, None, None], R, 1).repeat(R, 2)
    best, div = [], []
    for i in range(min(n_best, len(clips))):
        s = model.infill_samples(clips[i], known, best_of, steps=steps, seed=seed + i)
        best.append(max(psnr(x, clips[i], gen) for x in s))
        div.append(diversity(s, gen))
    return float(np.mean(best)), float(np.mean(div))


def evaluate_heldout(model, n_eval: int = 256, steps: int = 25, seed: int = 0, best_of: int = 4, n_best: int = 8,
                     progress=None, clip_seed: int = TEST_SEED, scores=SCORES) -> dict:
    """Metrics (model; `TASK_gain_vs_BASELINE`: paired PSNR gain with its 95 % interval), baselines
    (name -> metrics) and per-frame PSNR curves (task -> who -> (T,) list). `best_of=0` skips best-of-N."""
    clips, trajs = make_videos(n_eval, seed=clip_seed, num_frames=model.num_frames, res=model.resolution,
                               return_trajectories=True)
    metrics, baselines, curves = {}, {b: {} for b in BASELINES}, {}
    for task in TASKS:
        means, curves[task], gain = _task_scores(model, clips, trajs, task, steps, seed, progress, scores)
        metrics.update(means.pop("model"))
        metrics[f"{task}_gain_vs_{GAINS[task]}"] = gain
        for b, m in means.items():
            baselines[b].update(m)
    if not best_of:
        return {"metrics": metrics, "baselines": baselines, "per_frame_psnr": curves}
    best, div = _best_of(model, clips, steps, seed, best_of, n_best)
    metrics[f"predict4_best_of_{best_of}_psnr"] = best
    metrics[f"predict4_diversity_rms_of_{best_of}"] = div
    return {"metrics": metrics, "baselines": baselines, "per_frame_psnr": curves}


TASK_LABELS = {"interp4": "every 4th frame given (0, 4, 8)", "predict4": "prediction: frames 4-7 from 0-3",
               "ends2": "ends given (0, 1, 10, 11)"}


def task_table(card: dict) -> list[dict]:
    """Rows of the card's per-task table: model PSNR, its baseline, and the paired gain with its 95 % interval."""
    m, b, rows = card.get("metrics") or {}, card.get("baselines") or {}, []
    for task, base in GAINS.items():
        gain = m.get(f"{task}_gain_vs_{base}")
        if not isinstance(gain, dict):
            continue
        rows.append({"task": TASK_LABELS[task], "model PSNR (dB)": m[f"{task}_psnr"], "baseline": BASELINES[base],
                     "baseline PSNR (dB)": b[base][f"{task}_psnr"], "gain (dB)": gain["mean"],
                     "95 % interval": f"[{gain['ci_low']:+.2f}, {gain['ci_high']:+.2f}]"})
    return rows
