"""Image-change metrics for APT and PGD, on grey 32×32 images in [0, 1] units (numpy, no torch).

- `l2`, `linf`: size of the change x' − x (L2 over the 32×32 pixels, L∞ per pixel), [0, 1] units.
- `ssim`: structural similarity (Wang et al. 2004; Gaussian window 7, σ = 1.5, data range 1).
- `high_freq_share`: share of the change's energy above a radial frequency of 1/4 cycle per pixel
  (8 cycles per image, twice the 8×8 scans' own Nyquist limit): white noise puts ~80 % there,
  smooth edits little.
- `psnr`: peak signal-to-noise ratio in dB.
- `fooling_rate`: share of eligible images whose attack succeeded.
"""

from __future__ import annotations

import numpy as np


def grey01(img: np.ndarray) -> np.ndarray:
    """uint8 (..., H, W, 3) or (..., H, W) -> float64 grey in [0, 1]."""
    a = np.asarray(img)
    if a.ndim >= 3 and a.shape[-1] in (3, 4):
        a = a[..., :3].astype(np.float64).mean(-1)
    a = a.astype(np.float64)
    return a / 255.0 if np.asarray(img).dtype == np.uint8 else a


def l2(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.sqrt(((grey01(a) - grey01(b)) ** 2).sum()))


def linf(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.abs(grey01(a) - grey01(b)).max())


def rmse(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.sqrt(((grey01(a) - grey01(b)) ** 2).mean()))


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    m = ((grey01(a) - grey01(b)) ** 2).mean()
    return float("inf") if m == 0 else float(10 * np.log10(1.0 / m))


def _gauss_window(size: int = 7, sigma: float = 1.5) -> np.ndarray:
    r = np.arange(size) - (size - 1) / 2
    g = np.exp(-(r**2) / (2 * sigma**2))
    g /= g.sum()
    return np.outer(g, g)


def _filter_valid(x: np.ndarray, w: np.ndarray) -> np.ndarray:
    from numpy.lib.stride_tricks import sliding_window_view

    return (sliding_window_view(x, w.shape) * w).sum((-1, -2))


def ssim(a: np.ndarray, b: np.ndarray, data_range: float = 1.0) -> float:
    """Mean SSIM of two grey images (valid-window Gaussian filtering)."""
    x, y = grey01(a), grey01(b)
    if x.shape != y.shape or x.ndim != 2:
        raise ValueError(f"ssim needs two images of the same 2-D shape; got {x.shape} and {y.shape}.")
    w = _gauss_window()
    c1, c2 = (0.01 * data_range) ** 2, (0.03 * data_range) ** 2
    mx, my = _filter_valid(x, w), _filter_valid(y, w)
    sxx = _filter_valid(x * x, w) - mx**2
    syy = _filter_valid(y * y, w) - my**2
    sxy = _filter_valid(x * y, w) - mx * my
    s = ((2 * mx * my + c1) * (2 * sxy + c2)) / ((mx**2 + my**2 + c1) * (sxx + syy + c2))
    return float(s.mean())


def high_freq_share(a: np.ndarray, b: np.ndarray, cutoff: float = 0.25) -> float:
    """Share of the energy of (b − a) at radial frequency > `cutoff` cycles/pixel (0 when no change)."""
    d = grey01(b) - grey01(a)
    e = np.abs(np.fft.fft2(d)) ** 2
    fy = np.fft.fftfreq(d.shape[0])[:, None]
    fx = np.fft.fftfreq(d.shape[1])[None, :]
    r = np.sqrt(fx**2 + fy**2)
    tot = e.sum()
    return 0.0 if tot <= 1e-20 else float(e[r > cutoff].sum() / tot)


def change_metrics(original: np.ndarray, changed: np.ndarray) -> dict:
    """All change metrics of one image pair (uint8 or [0, 1] floats)."""
    return {
        "l2": l2(original, changed),
        "linf": linf(original, changed),
        "rmse": rmse(original, changed),
        "ssim": ssim(original, changed),
        "high_freq_share": high_freq_share(original, changed),
    }


def fooling_rate(success, eligible=None) -> float:
    """Share of successes among eligible items (all items when `eligible` is None); nan when none."""
    s = np.asarray(success, bool)
    m = np.ones_like(s) if eligible is None else np.asarray(eligible, bool)
    return float(s[m].mean()) if m.any() else float("nan")
