"""Procedural video clips: bouncing coloured sprites (with ground-truth trajectories) and moving digits.

Every clip is a pure function of its seed, so held-out clips come from seeds the trainer never uses.
Frames are uint8 RGB (T, R, R, 3) on a dark background.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

RESOLUTION = 32
NUM_FRAMES = 12  # the shipped model's clip length (see assets/checkpoints/video-bouncing.md)
BACKGROUND = (12, 12, 20)
SHAPES = ("disk", "square", "diamond")
# saturated, well-separated colours (bright on the dark background)
PALETTE = np.array([
    [240, 60, 60], [60, 220, 80], [70, 120, 255], [250, 210, 50],
    [230, 80, 230], [60, 220, 230], [255, 140, 40], [240, 240, 240],
], dtype=np.uint8)
KINDS = ("bouncing", "digits")
# training draws seeds >= 2**31; validation clips come from VAL_SEED, the test clips (the card) from TEST_SEED
EVAL_SEED = VAL_SEED = 10_000_000
TEST_SEED = 40_000_000


@dataclass
class Trajectories:
    """Ground truth of one bouncing clip: per-frame sprite centres (T, n, 2) as (x, y) pixels."""

    centers: np.ndarray
    radii: np.ndarray     # (n,)
    colors: np.ndarray    # (n, 3) uint8
    shapes: list


def _sprite_mask(shape: str, cx: float, cy: float, r: float, res: int) -> np.ndarray:
    yy, xx = np.mgrid[0:res, 0:res].astype(np.float32) + 0.5
    dx, dy = xx - cx, yy - cy
    if shape == "disk":
        return dx * dx + dy * dy <= r * r
    if shape == "square":
        return (np.abs(dx) <= r * 0.85) & (np.abs(dy) <= r * 0.85)
    return np.abs(dx) + np.abs(dy) <= r * 1.15  # diamond


def bouncing_clip(rng: np.random.Generator, num_frames: int = NUM_FRAMES, res: int = RESOLUTION,
                  n_sprites: int | None = None) -> tuple[np.ndarray, Trajectories]:
    """One clip of 1-3 sprites moving at constant velocity with specular bounces off the walls."""
    n = int(n_sprites) if n_sprites is not None else int(rng.integers(1, 4))
    radii = rng.uniform(2.5, 4.5, n) * res / 32
    colors = PALETTE[rng.choice(len(PALETTE), n, replace=False)]
    shapes = [SHAPES[i] for i in rng.integers(0, len(SHAPES), n)]
    pos = np.stack([rng.uniform(radii, res - radii), rng.uniform(radii, res - radii)], 1)
    speed = rng.uniform(0.8, 2.5, n) * res / 32
    ang = rng.uniform(0, 2 * np.pi, n)
    vel = np.stack([speed * np.cos(ang), speed * np.sin(ang)], 1)
    centers = np.zeros((num_frames, n, 2), np.float32)
    for t in range(num_frames):
        centers[t] = pos
        pos = pos + vel
        for d in range(2):  # reflect at the walls (the sprite's edge touches the wall)
            lo, hi = radii, res - radii
            under, over = pos[:, d] < lo, pos[:, d] > hi
            pos[under, d] = 2 * lo[under] - pos[under, d]
            pos[over, d] = 2 * hi[over] - pos[over, d]
            vel[under | over, d] *= -1
    frames = np.empty((num_frames, res, res, 3), np.uint8)
    frames[:] = BACKGROUND
    for t in range(num_frames):
        for i in range(n):
            m = _sprite_mask(shapes[i], centers[t, i, 0], centers[t, i, 1], radii[i], res)
            frames[t][m] = colors[i]
    return frames, Trajectories(centers, radii.astype(np.float32), colors, shapes)


_DIGITS = None


def _digits() -> np.ndarray:
    global _DIGITS
    if _DIGITS is None:
        from sklearn.datasets import load_digits

        _DIGITS = (load_digits().images / 16.0).astype(np.float32)  # (1797, 8, 8) real scans
    return _DIGITS


def digits_clip(rng: np.random.Generator, num_frames: int = NUM_FRAMES, res: int = RESOLUTION):
    """One or two of scikit-learn's handwritten digits (8x8 scans, upscaled x1.5) bouncing in the frame."""
    import cv2

    digits = _digits()
    n = int(rng.integers(1, 3))
    size = 12 * res // 32
    glyphs = [cv2.resize(digits[rng.integers(len(digits))], (size, size), interpolation=cv2.INTER_LINEAR)
              for _ in range(n)]
    colors = PALETTE[rng.choice(len(PALETTE), n, replace=False)].astype(np.float32)
    pos = rng.uniform(0, res - size, (n, 2))
    vel = rng.uniform(-2.0, 2.0, (n, 2)) * res / 32
    frames = np.zeros((num_frames, res, res, 3), np.float32) + np.array(BACKGROUND, np.float32)
    centers = np.zeros((num_frames, n, 2), np.float32)
    for t in range(num_frames):
        for i in range(n):
            x, y = np.rint(pos[i]).astype(int)
            a = glyphs[i][..., None]
            patch = frames[t, y:y + size, x:x + size]
            frames[t, y:y + size, x:x + size] = patch * (1 - a) + colors[i] * a
            centers[t, i] = (x + size / 2, y + size / 2)
        pos = pos + vel
        for d in range(2):
            under, over = pos[:, d] < 0, pos[:, d] > res - size
            pos[under, d] = -pos[under, d]
            pos[over, d] = 2 * (res - size) - pos[over, d]
            vel[under | over, d] *= -1
    traj = Trajectories(centers, np.full(n, size / 2, np.float32), colors.astype(np.uint8), ["digit"] * n)
    return np.clip(np.rint(frames), 0, 255).astype(np.uint8), traj


def make_videos(n: int, seed: int = 0, kind: str = "bouncing", num_frames: int = NUM_FRAMES,
                res: int = RESOLUTION, return_trajectories: bool = False):
    """`n` clips uint8 (N, T, R, R, 3); clip i is drawn from seed (seed, i) so prefixes are stable."""
    if kind not in KINDS:
        raise ValueError(f"Unknown clip kind {kind!r}; choose one of {', '.join(KINDS)}.")
    if n < 0:
        raise ValueError("The number of clips must be non-negative.")
    make = bouncing_clip if kind == "bouncing" else digits_clip
    clips, trajs = [], []
    for i in range(int(n)):
        rng = np.random.default_rng([int(seed), i, 0 if kind == "bouncing" else 1])
        c, tr = make(rng, num_frames=num_frames, res=res)
        clips.append(c)
        trajs.append(tr)
    out = np.stack(clips) if clips else np.zeros((0, num_frames, res, res, 3), np.uint8)
    return (out, trajs) if return_trajectories else out
