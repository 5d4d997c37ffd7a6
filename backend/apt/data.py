"""Handwritten digits for the APT page: scikit-learn's bundled `load_digits` (1,797 real 8×8 scans).

Images are scaled to [0, 1], upsampled smoothly (bilinear) to 32×32 and mapped to [-1, 1]; the split
is a fixed stratified 75/25 split (`random_state=0`): 1,347 train / 450 test. Public images are uint8
RGB (N, 32, 32, 3) with the grey value repeated, white ink on black as in the original scans.
"""

from __future__ import annotations

import functools

import numpy as np

SIZE = 32
N_CLASSES = 10
SPLIT_SEED = 0
TEST_FRACTION = 0.25


@functools.lru_cache(maxsize=1)
def _split() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    d = load_digits()
    x8 = (d.images / 16.0).astype(np.float32)  # (N, 8, 8) in [0, 1]
    y = d.target.astype(np.int64)
    xtr, xte, ytr, yte = train_test_split(x8, y, test_size=TEST_FRACTION, stratify=y, random_state=SPLIT_SEED)
    return xtr, ytr, xte, yte


def upsample(x8: np.ndarray, size: int = SIZE) -> np.ndarray:
    """(N, h, w) in [0, 1] -> (N, size, size) float32 in [-1, 1], bilinear (align_corners=False)."""
    import torch
    import torch.nn.functional as F

    t = torch.as_tensor(np.asarray(x8, np.float32))[:, None]
    up = F.interpolate(t, size=(size, size), mode="bilinear", align_corners=False)
    return (up[:, 0].clamp(0, 1) * 2 - 1).numpy()


@functools.lru_cache(maxsize=2)
def split_arrays(split: str) -> tuple[np.ndarray, np.ndarray]:
    """('train' | 'test') -> float32 (N, 32, 32) in [-1, 1], int64 labels (N,)."""
    xtr, ytr, xte, yte = _split()
    if split == "train":
        return upsample(xtr), ytr
    if split == "test":
        return upsample(xte), yte
    raise ValueError(f"Unknown split {split!r}; use 'train' or 'test'.")


def to_uint8(x: np.ndarray) -> np.ndarray:
    """float [-1, 1] (..., 32, 32) -> uint8 RGB (..., 32, 32, 3)."""
    g = np.clip(np.rint((np.asarray(x, np.float32) + 1) * 127.5), 0, 255).astype(np.uint8)
    return np.repeat(g[..., None], 3, axis=-1)


def from_uint8(img: np.ndarray) -> np.ndarray:
    """uint8 RGB/grey (..., 32, 32[, 3]) -> float32 grey (..., 32, 32) in [-1, 1]."""
    a = np.asarray(img)
    if a.ndim >= 3 and a.shape[-1] in (3, 4):
        a = a[..., :3].astype(np.float32).mean(-1)
    return a.astype(np.float32) / 127.5 - 1.0


def shift_augment(x, gen, max_shift: int = 2):
    """Random integer translations of a tensor batch (N, 1, H, W), the vacated border filled with the
    background value -1; `gen` is the torch.Generator that draws the shifts."""
    import torch
    import torch.nn.functional as F

    n, _, h, w = x.shape
    pad = F.pad(x, (max_shift,) * 4, value=-1.0)
    dx = torch.randint(0, 2 * max_shift + 1, (n,), generator=gen)
    dy = torch.randint(0, 2 * max_shift + 1, (n,), generator=gen)
    out = torch.empty_like(x)
    for i in range(n):
        out[i] = pad[i, :, dy[i]: dy[i] + h, dx[i]: dx[i] + w]
    return out


def test_set(n: int = 20, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """`n` held-out test digits (a seeded random subset, no repeats): uint8 (n, 32, 32, 3), int (n,)."""
    x, y = split_arrays("test")
    if not 1 <= int(n) <= len(x):
        raise ValueError(f"Ask for between 1 and {len(x)} test images (got {n}).")
    idx = np.random.default_rng(seed).permutation(len(x))[: int(n)]
    return to_uint8(x[idx]), y[idx].astype(np.int64)


def validation_set(n: int = 30, seed: int = 2, held_out: tuple[int, int] = (100, 1)) -> tuple[np.ndarray, np.ndarray]:
    """`n` test-split digits outside the headline digits `test_set(*held_out)` (a seeded random subset):
    the validation digits on which every attack setting is chosen. uint8 (n, 32, 32, 3), int (n,)."""
    x, y = split_arrays("test")
    headline = set(np.random.default_rng(held_out[1]).permutation(len(x))[: held_out[0]].tolist())
    rest = np.array([i for i in range(len(x)) if i not in headline])
    if not 1 <= int(n) <= len(rest):
        raise ValueError(f"Ask for between 1 and {len(rest)} validation images (got {n}).")
    idx = rest[np.random.default_rng(seed).permutation(len(rest))[: int(n)]]
    return to_uint8(x[idx]), y[idx].astype(np.int64)


def prepare_image(img: np.ndarray, invert: bool | None = None) -> np.ndarray:
    """Turn any RGB/grey image (a drawing, an upload) into a digit like the training data.

    Converts to grey, inverts when the background is light (ink must be bright), crops to the ink's
    bounding box, pads it to a square with a margin like `load_digits` (the digit fills ~the central
    6 of 8 pixels), averages down to 8×8 and upsamples to 32×32 as the data are. Raises ValueError
    for an empty (blank) image. Returns uint8 (32, 32, 3).
    """
    from PIL import Image

    a = np.asarray(img)
    if a.ndim == 3 and a.shape[-1] == 4:  # RGBA drawing: transparent = background
        alpha = a[..., 3:4].astype(np.float32) / 255.0
        rgb = a[..., :3].astype(np.float32)
        if alpha.min() < 1.0:
            a = (rgb * alpha).mean(-1) if (rgb * alpha).max() > 0 else alpha[..., 0] * 255
        else:
            a = rgb.mean(-1)
    elif a.ndim == 3:
        a = a[..., :3].astype(np.float32).mean(-1)
    elif a.ndim != 2:
        raise ValueError(f"An image must be (H, W) or (H, W, 3); got shape {a.shape}.")
    g = a.astype(np.float32) / 255.0
    if g.size == 0 or g.max() - g.min() < 0.1:
        raise ValueError("The image is blank: draw or upload a digit with visible strokes.")
    if invert is None:
        border = np.concatenate([g[0], g[-1], g[:, 0], g[:, -1]])
        invert = float(np.median(border)) > 0.5
    if invert:
        g = 1.0 - g
    g = np.clip((g - np.median(np.concatenate([g[0], g[-1], g[:, 0], g[:, -1]]))) / max(1e-6, g.max()), 0, 1)
    ys, xs = np.nonzero(g > 0.2)
    if len(ys) == 0:
        raise ValueError("The image is blank: draw or upload a digit with visible strokes.")
    crop = g[ys.min(): ys.max() + 1, xs.min(): xs.max() + 1]
    h, w = crop.shape
    side = int(max(h, w) * 8 / 6) + 1  # margin: the digit spans ~6 of 8 cells
    canvas = np.zeros((side, side), np.float32)
    oy, ox = (side - h) // 2, (side - w) // 2
    canvas[oy: oy + h, ox: ox + w] = crop
    small = np.asarray(Image.fromarray((canvas * 255).astype(np.uint8)).resize((8, 8), Image.Resampling.BOX),
                       np.float32) / 255.0
    small = small / max(small.max(), 1e-6)
    return to_uint8(upsample(small[None])[0])
