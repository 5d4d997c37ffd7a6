"""Metrics and baselines for video infilling, on generated pixels only (given pixels are exact by design).

- PSNR (data range 255) and SSIM (Gaussian window, sigma 1.5, as Wang et al. 2004) per generated frame.
- Baselines: copy the nearest given frame, linear interpolation in time between the surrounding given
  frames (copy beyond the ends), and last-given-frame copy (prediction). All work per pixel, so they
  also apply to rectangle masks.
- Procedural ground truth: centroid error of the sprites (connected components of the foreground,
  Hungarian-matched to the true centres; a sprite with no blob costs MISS_PX).
- Best-of-N PSNR and sample diversity (RMS difference between samples on generated pixels).
"""

from __future__ import annotations

import numpy as np

MISS_PX = 8.0
FG_THRESHOLD = 60  # a pixel is foreground when a channel differs from the background by more than this


def generated_mask(known: np.ndarray, shape, region_mask: np.ndarray | None = None) -> np.ndarray:
    """Bool (T, H, W): True = generated pixel (every pixel of a frame not given, plus the region's)."""
    T, H, W = shape[:3]
    g = np.repeat(~np.asarray(known, bool)[:, None, None], H, 1).repeat(W, 2)
    if region_mask is not None:
        g = g | np.asarray(region_mask, bool)
    return g


def psnr(a: np.ndarray, b: np.ndarray, where: np.ndarray | None = None) -> float:
    """PSNR in dB between uint8 arrays (over pixels where `where` is True, broadcast on channels)."""
    d = a.astype(np.float64) - b.astype(np.float64)
    if where is not None:
        d = d[np.asarray(where, bool)]
    mse = float(np.mean(d * d)) if d.size else 0.0
    return float(10 * np.log10(255.0**2 / max(mse, 1e-10)))


def ssim(a: np.ndarray, b: np.ndarray) -> float:
    """Mean SSIM of two uint8 (H, W, 3) images (Gaussian window sigma 1.5, data range 255)."""
    from scipy.ndimage import gaussian_filter

    x, y = a.astype(np.float64), b.astype(np.float64)
    c1, c2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2

    def f(z):
        return gaussian_filter(z, sigma=(1.5, 1.5, 0), truncate=3.5)

    mx, my = f(x), f(y)
    vx, vy, cxy = f(x * x) - mx * mx, f(y * y) - my * my, f(x * y) - mx * my
    s = ((2 * mx * my + c1) * (2 * cxy + c2)) / ((mx * mx + my * my + c1) * (vx + vy + c2))
    return float(s.mean())


def per_frame_psnr(pred: np.ndarray, truth: np.ndarray, gen: np.ndarray) -> np.ndarray:
    """PSNR per frame over its generated pixels; NaN for frames with none."""
    out = np.full(len(pred), np.nan)
    for t in range(len(pred)):
        if gen[t].any():
            out[t] = psnr(pred[t], truth[t], gen[t])
    return out


def per_frame_ssim(pred: np.ndarray, truth: np.ndarray, gen: np.ndarray) -> np.ndarray:
    """SSIM of each whole frame that holds generated pixels; NaN for frames with none."""
    out = np.full(len(pred), np.nan)
    for t in range(len(pred)):
        if gen[t].any():
            out[t] = ssim(pred[t], truth[t])
    return out


# ---------------------------------------------------------------- baselines
def _neighbours(gen: np.ndarray):
    """Per pixel, the index of the previous and next given frame (-1 / T when none)."""
    T = gen.shape[0]
    idx = np.arange(T)[:, None, None] * np.ones(gen.shape, int)
    prev = np.maximum.accumulate(np.where(~gen, idx, -1), axis=0)
    nxt = np.flip(np.minimum.accumulate(np.flip(np.where(~gen, idx, T), 0), axis=0), 0)
    return idx, prev, nxt


def _gather(clip: np.ndarray, tidx: np.ndarray) -> np.ndarray:
    T, H, W = tidx.shape
    hh, ww = np.meshgrid(np.arange(H), np.arange(W), indexing="ij")
    return clip[np.clip(tidx, 0, T - 1), hh[None], ww[None]]


def baseline(clip: np.ndarray, known: np.ndarray, kind: str = "linear",
             region_mask: np.ndarray | None = None) -> np.ndarray:
    """Fill generated pixels of uint8 (T, H, W, 3) from given ones: 'nearest', 'linear' or 'last'."""
    clip = np.asarray(clip)
    gen = generated_mask(known, clip.shape, region_mask)
    if gen.all():
        return np.zeros_like(clip) + np.median(clip.reshape(-1, 3), 0).astype(np.uint8)
    idx, prev, nxt = _neighbours(gen)
    T = clip.shape[0]
    has_p, has_n = prev >= 0, nxt < T
    if kind == "last":
        src = np.where(has_p, prev, nxt)
        out = _gather(clip, src)
    elif kind == "nearest":
        dp = np.where(has_p, idx - prev, 10**6)
        dn = np.where(has_n, nxt - idx, 10**6)
        out = _gather(clip, np.where(dp <= dn, prev, nxt))
    elif kind == "linear":
        a, b = _gather(clip, prev).astype(np.float64), _gather(clip, nxt).astype(np.float64)
        w = np.where(has_p & has_n, (idx - prev) / np.maximum(nxt - prev, 1), np.where(has_p, 0.0, 1.0))
        out = np.rint(a * (1 - w[..., None]) + b * w[..., None]).astype(np.uint8)
        out = np.where((has_p & has_n)[..., None], out, _gather(clip, np.where(has_p, prev, nxt)))
    else:
        raise ValueError(f"Unknown baseline {kind!r}; use 'nearest', 'linear' or 'last'.")
    return np.where(gen[..., None], out, clip).astype(np.uint8)


BASELINES = {"nearest": "copy nearest given frame", "linear": "linear interpolation", "last": "copy last given frame"}


# ---------------------------------------------------------------- procedural ground truth
def blob_centroids(frame: np.ndarray, background=(12, 12, 20)) -> np.ndarray:
    """Centroids (k, 2) as (x, y) of the foreground's connected components (area >= 3 px)."""
    import cv2

    fg = (np.abs(frame.astype(np.int16) - np.array(background, np.int16)).max(-1) > FG_THRESHOLD).astype(np.uint8)
    n, _, stats, cents = cv2.connectedComponentsWithStats(fg, connectivity=8)
    keep = [i for i in range(1, n) if stats[i, cv2.CC_STAT_AREA] >= 3]
    return cents[keep].astype(np.float32) + 0.5 if keep else np.zeros((0, 2), np.float32)


def centroid_error(frame: np.ndarray, centers: np.ndarray) -> float:
    """Mean distance (px) from each true sprite centre to its Hungarian-matched blob (MISS_PX if none)."""
    from scipy.optimize import linear_sum_assignment

    blobs = blob_centroids(frame)
    if len(centers) == 0:
        return 0.0
    if len(blobs) == 0:
        return MISS_PX
    d = np.linalg.norm(centers[:, None] - blobs[None], axis=-1)
    r, c = linear_sum_assignment(d)
    cost = np.full(len(centers), MISS_PX)
    cost[r] = np.minimum(d[r, c], MISS_PX)
    return float(cost.mean())


def clip_scores(pred: np.ndarray, truth: np.ndarray, known: np.ndarray, centers: np.ndarray | None = None,
                region_mask: np.ndarray | None = None, with_ssim: bool = True) -> dict:
    """PSNR / SSIM / centroid error of one predicted clip on its generated pixels and frames."""
    gen = generated_mask(known, truth.shape, region_mask)
    frames = np.where(gen.any((1, 2)))[0]
    out = {"psnr": psnr(pred, truth, gen), "per_frame_psnr": per_frame_psnr(pred, truth, gen)}
    if with_ssim:
        out["per_frame_ssim"] = per_frame_ssim(pred, truth, gen)
        out["ssim"] = float(np.mean(out["per_frame_ssim"][frames]))
    if centers is not None:
        out["centroid_px"] = float(np.mean([centroid_error(pred[t], centers[t]) for t in frames]))
    return out


def diversity(samples: np.ndarray, gen: np.ndarray) -> float:
    """Mean pairwise RMS difference (0-255 scale) between samples (N, T, H, W, 3) on generated pixels."""
    n = len(samples)
    if n < 2:
        return 0.0
    vals = []
    for i in range(n):
        for j in range(i + 1, n):
            d = samples[i].astype(np.float64) - samples[j].astype(np.float64)
            vals.append(np.sqrt(np.mean(d[gen] ** 2)))
    return float(np.mean(vals))
