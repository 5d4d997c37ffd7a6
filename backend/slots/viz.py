"""Pure-numpy pictures for the Slots page: label colouring, overlays, mask tiles, and scene reports."""

from __future__ import annotations

import numpy as np

# distinct colours for slots / objects; index 0 of ground truth (background) is drawn dark gray
PALETTE = np.array([
    [230, 25, 75], [60, 180, 75], [0, 130, 200], [255, 225, 25], [245, 130, 48],
    [145, 30, 180], [70, 240, 240], [240, 50, 230], [210, 245, 60], [250, 190, 190],
    [0, 128, 128], [170, 110, 40],
], np.uint8)
GT_BACKGROUND = np.array([40, 40, 40], np.uint8)


def colorize(labels: np.ndarray, ground_truth: bool = False) -> np.ndarray:
    """Integer labels (...,H,W) -> uint8 RGB; ground truth draws label 0 (background) dark gray."""
    lab = np.asarray(labels).astype(np.int64)
    out = PALETTE[lab % len(PALETTE)]
    if ground_truth:
        out = PALETTE[(lab - 1) % len(PALETTE)]
        out[lab == 0] = GT_BACKGROUND
    return out


def overlay(images: np.ndarray, labels: np.ndarray, alpha: float = 0.55) -> np.ndarray:
    """Blend slot colours over images (uint8), with the segment boundaries drawn in white."""
    img = np.asarray(images).astype(np.float32)
    col = colorize(labels).astype(np.float32)
    out = (1 - alpha) * img + alpha * col
    lab = np.asarray(labels)
    edge = np.zeros(lab.shape, bool)
    edge[..., 1:, :] |= lab[..., 1:, :] != lab[..., :-1, :]
    edge[..., :, 1:] |= lab[..., :, 1:] != lab[..., :, :-1]
    out[edge] = 255
    return np.clip(np.rint(out), 0, 255).astype(np.uint8)


def mask_image(mask: np.ndarray) -> np.ndarray:
    """A float mask in [0,1] (H,W) -> uint8 RGB grayscale."""
    m = np.clip(np.rint(np.asarray(mask) * 255), 0, 255).astype(np.uint8)
    return np.repeat(m[..., None], 3, axis=-1)


def fit_display(img: np.ndarray, max_side: int = 512) -> np.ndarray:
    """Shrink (area) an uploaded image so its longer side is at most `max_side` (no upscaling)."""
    import cv2

    h, w = img.shape[:2]
    s = max(h, w)
    if s <= max_side:
        return img
    f = max_side / s
    return cv2.resize(img, (max(2, round(w * f)), max(2, round(h * f))), interpolation=cv2.INTER_AREA)


def display_factor(side: int, target: int = 256) -> int:
    """Integer nearest-neighbour upscaling factor bringing `side` pixels close to `target`."""
    return max(1, int(round(target / max(1, side))))
