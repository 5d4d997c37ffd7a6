"""The clips a request starts from: task presets, rectangle masks, generated clips and uploaded videos.

Everything here is numpy (and OpenCV for resizing); nothing loads a model.
"""

from __future__ import annotations

import numpy as np

from backend.video.data import NUM_FRAMES, RESOLUTION, make_videos

PRESETS = {
    "upsampling": "Frame-rate upsampling: every 4th frame given",
    "prediction": "Prediction: the first 4 frames given",
    "infilling": "Infilling: the first 2 and last 2 frames given",
    "unconditional": "Unconditional: nothing given",
}


def preset_known(preset: str, num_frames: int) -> np.ndarray:
    """Bool (T,) of given frames for a task preset."""
    t = np.arange(int(num_frames))
    if preset == "upsampling":
        return t % 4 == 0
    if preset == "prediction":
        return t < min(4, num_frames - 1)
    if preset == "infilling":
        k = 2 if num_frames > 4 else 1
        return (t < k) | (t >= num_frames - k)
    if preset == "unconditional":
        return np.zeros(num_frames, bool)
    raise ValueError(f"Unknown preset {preset!r}; choose one of {', '.join(PRESETS)}.")


def box_mask(num_frames: int, size: int, frames, x_range, y_range) -> np.ndarray:
    """Bool (T, size, size): True inside the rectangle [x0, x1) x [y0, y1) on the chosen frames."""
    m = np.zeros((int(num_frames), int(size), int(size)), bool)
    x0, x1 = sorted(int(v) for v in x_range)
    y0, y1 = sorted(int(v) for v in y_range)
    if x1 <= x0 or y1 <= y0:
        raise ValueError("The rectangle is empty: give it a width and a height of at least one pixel.")
    for f in frames:
        if not 0 <= int(f) < num_frames:
            raise ValueError(f"Frame {f} does not exist; frames are 0 to {num_frames - 1}.")
        m[int(f), y0:y1, x0:x1] = True
    return m


def fit_clip(frames: np.ndarray, num_frames: int, resolution: int) -> tuple[np.ndarray, str]:
    """Centre-crop frames (T, H, W, 3) to a square, resize to the model and hold the last frame if short.

    Returns the clip (num_frames, R, R, 3) and a note describing what was done (empty if nothing).
    """
    import cv2

    frames = np.asarray(frames)
    if frames.ndim == 3:
        frames = np.repeat(frames[..., None], 3, -1)
    if frames.ndim != 4 or len(frames) == 0:
        raise ValueError(f"A video must be frames (T, H, W, 3); got shape {frames.shape}.")
    notes = []
    T, H, W = frames.shape[:3]
    s = min(H, W)
    if H != W:
        y, x = (H - s) // 2, (W - s) // 2
        frames = frames[:, y:y + s, x:x + s]
        notes.append(f"centre-cropped {W}×{H} to {s}×{s}")
    if s != resolution:
        interp = cv2.INTER_AREA if s > resolution else cv2.INTER_LINEAR
        frames = np.stack([cv2.resize(np.ascontiguousarray(f), (resolution, resolution), interpolation=interp)
                           for f in frames])
        notes.append(f"resized to {resolution}×{resolution}")
    if T < num_frames:
        frames = np.concatenate([frames, np.repeat(frames[-1:], num_frames - T, 0)])
        notes.append(f"only {T} frames in the range, so the last one is held for {num_frames - T} more")
    return np.ascontiguousarray(frames[:num_frames]).astype(np.uint8), "; ".join(notes)


def clip_from_upload(data, start: int = 0, num_frames: int = 12, resolution: int = 32) -> tuple[np.ndarray, str]:
    """Read frames [start, start + num_frames) of an uploaded video and fit them to the model.

    Bad files (not a video, truncated, one frame, too large) raise ValueError with a clear sentence.
    """
    from backend.core.uploads import load_video

    if int(start) < 0:
        raise ValueError("The first frame must be 0 or later.")
    try:
        frames = load_video(data, start=int(start), max_frames=int(num_frames), min_frames=2, max_side=1024)
    except ValueError as e:
        if int(start) > 0 and "readable frame" in str(e):
            raise ValueError(f"{e} Starting at frame {start} leaves too few frames: choose an earlier start.") from e
        raise
    return fit_clip(frames, num_frames, resolution)


def generated_clip(kind: str = "bouncing", seed: int = 0, num_frames: int = NUM_FRAMES,
                   resolution: int = RESOLUTION) -> tuple[np.ndarray, np.ndarray | None]:
    """One procedural clip (T, R, R, 3) and its sprites' true centres (T, n, 2), or None for digit clips
    (a digit's box centre is not its blob's centroid, so centroid error is defined for sprites only)."""
    clips, trajs = make_videos(1, seed=int(seed), kind=kind, num_frames=num_frames, res=resolution,
                               return_trajectories=True)
    return clips[0], (trajs[0].centers if kind == "bouncing" else None)


def filmstrip(frames: np.ndarray, generated: np.ndarray | None = None, scale: int = 4, gap: int = 2) -> np.ndarray:
    """Frames (T, H, W, 3) side by side as one image, upscaled (nearest) and with white gaps; the pixels to
    generate are hatched grey when `generated` (T, H, W) is given."""
    fr = np.asarray(frames, np.uint8)
    if generated is not None:
        hatch = ((np.indices(fr.shape[1:3]).sum(0) // 2) % 2)[None, ..., None] * 30 + 40
        fr = np.where(np.asarray(generated, bool)[..., None], hatch, fr).astype(np.uint8)
    big = fr.repeat(scale, 1).repeat(scale, 2)
    pad = np.full((big.shape[1], gap, 3), 255, np.uint8)
    return np.concatenate([x for f in big for x in (f, pad)][:-1], axis=1)


def side_by_side(clips, gap: int = 2) -> np.ndarray:
    """Clips (T, H, W, 3) of one length joined left to right, frame by frame, with white gaps: one clip."""
    pad = np.full((*np.shape(clips[0])[:2], gap, 3), 255, np.uint8)
    return np.concatenate([x for c in clips for x in (np.asarray(c, np.uint8), pad)][:-1], axis=2)
