"""The synthetic shift suite: eight corruptions at five severities, seeded, on 16x16 grey digits.

`shift(images, kind, severity, seed)` takes uint8 RGB (N, H, W, 3), uint8 grey (N, H, W) or float grey in
[0, 1] and returns the same layout and dtype. Severity 0 is the identity.
"""

from __future__ import annotations

import numpy as np

from backend.robustness.data import from_images

KINDS = ("rotation", "noise", "blur", "contrast", "thickness", "elastic", "translation", "jpeg")
SEVERITIES = (1, 2, 3, 4, 5)
# what each severity means (index = severity - 1)
LEVELS = {
    "rotation": (10, 20, 30, 45, 60),  # degrees, random sign
    "noise": (0.08, 0.16, 0.25, 0.35, 0.5),  # Gaussian sd on [0, 1]
    "blur": (0.5, 0.75, 1.0, 1.3, 1.7),  # Gaussian sigma in pixels
    "contrast": (0.6, 0.45, 0.3, 0.2, 0.1),  # remaining contrast
    "thickness": (0.4, 0.7, 1.0, 1.5, 2.0),  # strength of a grey dilation (>1: a second one)
    "elastic": (0.6, 0.9, 1.2, 1.6, 2.0),  # displacement scale in pixels
    "translation": (1, 2, 3, 4, 5),  # pixels, random direction
    "jpeg": (50, 30, 18, 10, 5),  # JPEG quality
}
UNITS = {"rotation": "deg", "noise": "sd", "blur": "sigma px", "contrast": "contrast x", "thickness": "dilation",
         "elastic": "px", "translation": "px", "jpeg": "quality"}


def _warp(img, m):
    import cv2

    return cv2.warpAffine(img, m, img.shape[::-1], flags=cv2.INTER_LINEAR, borderValue=0.0)


def _one(x: np.ndarray, kind: str, level: float, rng: np.random.Generator) -> np.ndarray:
    import cv2

    h, w = x.shape
    if kind == "rotation":
        return _warp(x, cv2.getRotationMatrix2D((w / 2 - 0.5, h / 2 - 0.5), level * rng.choice([-1, 1]), 1.0))
    if kind == "noise":
        return x + level * rng.standard_normal(x.shape).astype(np.float32)
    if kind == "blur":
        return cv2.GaussianBlur(x, (0, 0), level)
    if kind == "contrast":
        m = x.mean()
        return (x - m) * level + m
    if kind == "thickness":
        k = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (3, 3))
        out = x
        for i in range(int(np.ceil(level))):  # full dilations, the last one blended by the remainder
            out = np.maximum(out, min(1.0, level - i) * cv2.dilate(out, k))
        return out
    if kind == "elastic":
        dx = cv2.GaussianBlur(rng.uniform(-1, 1, x.shape).astype(np.float32), (0, 0), 2.0)
        dy = cv2.GaussianBlur(rng.uniform(-1, 1, x.shape).astype(np.float32), (0, 0), 2.0)
        s = level / max(np.abs(dx).max(), np.abs(dy).max(), 1e-6)
        gx, gy = np.meshgrid(np.arange(w, dtype=np.float32), np.arange(h, dtype=np.float32))
        return cv2.remap(x, gx + s * dx, gy + s * dy, cv2.INTER_LINEAR, borderValue=0.0)
    if kind == "translation":
        a = rng.uniform(0, 2 * np.pi)
        return _warp(x, np.float32([[1, 0, level * np.cos(a)], [0, 1, level * np.sin(a)]]))
    if kind == "jpeg":
        ok, buf = cv2.imencode(".jpg", np.clip(np.rint(x * 255), 0, 255).astype(np.uint8),
                               [cv2.IMWRITE_JPEG_QUALITY, int(level)])
        return cv2.imdecode(buf, cv2.IMREAD_GRAYSCALE).astype(np.float32) / 255.0
    raise ValueError(f"Unknown shift {kind!r}; choose one of {', '.join(KINDS)}.")


def shift(images, kind: str, severity: int, seed: int = 0):
    """The batch with shift `kind` at `severity` (0-5) applied; each image gets its own seeded draw."""
    if kind not in KINDS:
        raise ValueError(f"Unknown shift {kind!r}; choose one of {', '.join(KINDS)}.")
    if int(severity) not in (0, *SEVERITIES):
        raise ValueError(f"Severity must be 0 (none) to 5; got {severity}.")
    arr = np.asarray(images)
    x = from_images(arr)
    if int(severity) > 0:
        level = LEVELS[kind][int(severity) - 1]
        rng = np.random.default_rng([int(seed), KINDS.index(kind), int(severity)])
        x = np.stack([_one(np.ascontiguousarray(im), kind, level, rng) for im in x]).astype(np.float32)
        x = np.clip(x, 0, 1)
    if arr.dtype == np.uint8:
        g = np.clip(np.rint(x * 255), 0, 255).astype(np.uint8)
        return np.repeat(g[..., None], 3, axis=-1) if arr.ndim == 4 else g
    return x


def synthetic_domains() -> list[str]:
    """'kind/severity' names of the 40 synthetic domains."""
    return [f"{k}/{s}" for k in KINDS for s in SEVERITIES]


def describe(kind: str, severity: int) -> str:
    return f"{kind} {LEVELS[kind][severity - 1]:g} {UNITS[kind]}"
