"""Held-out evaluation of a video model: the model card's numbers and the per-frame detail behind them.

Three tasks on clips from seeds the trainer never draws (`EVAL_SEED` and above), each scored on the
generated pixels against the copy baselines: every 4th frame given (`interp4`), the first 4 given with
the next 4 scored (`predict4`), the first and last 2 given (`ends2`). On `predict4`, the most uncertain
task, best-of-N PSNR and the diversity of N samples per clip.
"""

from __future__ import annotations

import numpy as np

from backend.video.clips import preset_known
from backend.video.data import EVAL_SEED, make_videos
from backend.video.metrics import BASELINES, baseline, clip_scores, diversity, psnr

# task -> (preset of given frames, frames scored among the generated ones (None: all of them))
TASKS = {
    "interp4": ("upsampling", None),
    "predict4": ("prediction", lambda T: (np.arange(T) >= 4) & (np.arange(T) < 8)),
    "ends2": ("infilling", None),
}
SCORES = ("psnr", "ssim", "centroid_px")


def _task_scores(model, clips, trajs, task: str, steps: int, seed: int, progress=None):
    """Mean scores of the model and of each baseline on one task, and their per-frame PSNR curves."""
    T, R = model.num_frames, model.resolution
    preset, scored_fn = TASKS[task]
    known = preset_known(preset, T)
    scored = ~known if scored_fn is None else scored_fn(T) & ~known
    masks = np.repeat(~known[None, :, None, None], len(clips), 0) * np.ones((1, T, R, R), bool)
    preds = model.batch_infill(clips, masks, steps=steps, seed=seed, progress=progress)
    rows = {"model": [], **{b: [] for b in BASELINES}}
    for i, clip in enumerate(clips):  # frames outside `scored` count as given for scoring
        rows["model"].append(clip_scores(preds[i], clip, ~scored, trajs[i].centers))
        for b in BASELINES:
            rows[b].append(clip_scores(baseline(clip, known, b), clip, ~scored, trajs[i].centers))
    means = {who: {f"{task}_{k}": float(np.mean([r[k] for r in rs])) for k in SCORES} for who, rs in rows.items()}
    curves = {who: _mean_curve(np.stack([r["per_frame_psnr"] for r in rs])) for who, rs in rows.items()}
    return means, curves


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


def evaluate_heldout(model, n_eval: int = 32, steps: int = 25, seed: int = 0, best_of: int = 4, n_best: int = 8,
                     progress=None) -> dict:
    """Metrics (model), baselines (name -> metrics) and per-frame PSNR curves (task -> who -> (T,) list)."""
    clips, trajs = make_videos(n_eval, seed=EVAL_SEED, num_frames=model.num_frames, res=model.resolution,
                               return_trajectories=True)
    metrics, baselines, curves = {}, {b: {} for b in BASELINES}, {}
    for task in TASKS:
        means, curves[task] = _task_scores(model, clips, trajs, task, steps, seed, progress)
        metrics.update(means.pop("model"))
        for b, m in means.items():
            baselines[b].update(m)
    best, div = _best_of(model, clips, steps, seed, best_of, n_best)
    metrics[f"predict4_best_of_{best_of}_psnr"] = best
    metrics[f"predict4_diversity_rms_of_{best_of}"] = div
    return {"metrics": metrics, "baselines": baselines, "per_frame_psnr": curves}
