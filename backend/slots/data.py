"""Seeded multi-object scenes for Slot Attention (a stand-in for Multi-dSprites / textured variants).

`sprites`: 2-4 objects (square, circle, triangle, heart), each 20-40 % of the image side, random
saturated hue, painted in z-order on a black or dark-gray background. `textured`: the same scenes with
procedural textures (stripes, checks, dots, smooth noise) inside the objects and on the background,
in the spirit of "Inductive biases for object-centric representations in the presence of complex
textures" (neural style transfer needs VGG weights we cannot download).

Scenes are drawn at 4x resolution with OpenCV and downsampled with area averaging (anti-aliased);
label maps (0 = background, i = object i, exact under occlusion) are sampled with nearest neighbour
from the same high-resolution paint order, never interpolated. Scene i of `make_scenes(n, seed)` comes
from `np.random.default_rng([seed, i])`, so any scene is reproducible from (seed, i) alone.
Training draws from seeds >= TRAIN_SEED_BASE, which the page, tests and evaluation never use.

`dist` picks the ranges scenes are drawn from (`DISTS`): "standard" (the ranges above, the shipped models'
training data), "varied" (wider sizes, colours and backgrounds, rotated shapes, outlined and aliased objects,
1-4 objects) and "shifted" (wider still; a test set only, never trained on). Counts stay <= 4: the models have 5
slots. Standard scenes draw no extra random numbers, so they are the same scenes for every version of this file.
"""

from __future__ import annotations

import colorsys

import numpy as np

SHAPES = ("square", "circle", "triangle", "heart")
VARIANTS = ("sprites", "textured")
N_COLOR_BINS = 6  # hue bins for the categorical "color" property
TRAIN_SEED_BASE = 1_000_000  # training scenes use seeds >= this; held-out sets use smaller seeds
EVAL_SEED = 10_000  # held-out scenes for browsing and the page's histograms (not the cards' test set)
DEFAULT_RES = 32
SUPER = 4  # draw at 4x, then downsample
MAX_OBJECTS = 4
TEST_SEED = 77_001  # the test set of the shipped cards, evaluated once per shipped checkpoint
# the ranges of each scene distribution: object count, size (of the side), saturation, value, background gray
# (max), share of black backgrounds, background saturation (max), share of outlined objects, share of aliased scenes
# (no anti-aliasing), rotation (max degrees)
DISTS = {
    "standard": {"count": (2, 4), "size": (0.2, 0.4), "sat": (0.75, 1.0), "val": (0.8, 1.0), "gray": 0.5,
                 "black": 0.3, "bg_sat": 0.0, "outline": 0.0, "aliased": 0.0, "angle": 0.0},
    "varied": {"count": (1, 4), "size": (0.15, 0.45), "sat": (0.55, 1.0), "val": (0.65, 1.0), "gray": 0.6,
               "black": 0.2, "bg_sat": 0.3, "outline": 0.3, "aliased": 0.3, "angle": 30.0},
    "shifted": {"count": (2, 4), "size": (0.12, 0.5), "sat": (0.4, 1.0), "val": (0.55, 1.0), "gray": 0.7,
                "black": 0.15, "bg_sat": 0.45, "outline": 0.5, "aliased": 0.5, "angle": 45.0},
}


def _hsv(h: float, s: float, v: float) -> np.ndarray:
    return np.array(colorsys.hsv_to_rgb(h % 1.0, s, v), dtype=np.float32)


def shape_mask(shape: str, cx: float, cy: float, size: float, hr: int, angle: float = 0.0) -> np.ndarray:
    """Boolean mask (hr, hr) of one shape; cx, cy, size in units of the image side, rotated by `angle` degrees."""
    import cv2

    m = np.zeros((hr, hr), np.uint8)
    c = np.array([cx, cy]) * hr
    r = size * hr / 2.0
    if shape == "circle":
        cv2.circle(m, (int(round(c[0])), int(round(c[1]))), int(round(r)), 1, -1)
        return m.astype(bool)
    if shape == "square":
        pts = np.array([[-r, -r], [r, -r], [r, r], [-r, r]]) * 0.88
    elif shape == "triangle":
        pts = np.array([[0, -r], [r, r * 0.8], [-r, r * 0.8]])
    elif shape == "heart":
        t = np.linspace(0, 2 * np.pi, 64)
        x = 16 * np.sin(t) ** 3
        y = -(13 * np.cos(t) - 5 * np.cos(2 * t) - 2 * np.cos(3 * t) - np.cos(4 * t))
        pts = np.stack([x, y + 2.5], 1) * (r / 16.5)
    else:  # pragma: no cover - guarded by SHAPES
        raise ValueError(shape)
    if angle:
        a = np.deg2rad(angle)
        pts = pts @ np.array([[np.cos(a), np.sin(a)], [-np.sin(a), np.cos(a)]])
    cv2.fillPoly(m, [np.round(c + pts).astype(np.int32)], 1)
    return m.astype(bool)


def _pattern(rng: np.random.Generator, hr: int) -> np.ndarray:
    """A procedural texture in [0, 1] (hr, hr): stripes, checks, dots or smooth noise."""
    import cv2

    kind = rng.integers(4)
    yy, xx = np.mgrid[0:hr, 0:hr].astype(np.float32) / SUPER  # in low-res pixels
    period = rng.uniform(3.0, 7.0)
    if kind == 0:  # stripes at a random angle
        a = rng.uniform(0, np.pi)
        u = xx * np.cos(a) + yy * np.sin(a)
        p = (np.sin(2 * np.pi * u / period + rng.uniform(0, 6.3)) > 0).astype(np.float32)
    elif kind == 1:  # checks
        ox, oy = rng.uniform(0, period, 2)
        p = (((np.floor((xx + ox) / period) + np.floor((yy + oy) / period)) % 2) > 0).astype(np.float32)
    elif kind == 2:  # dots on a grid
        ox, oy = rng.uniform(0, period, 2)
        dx = ((xx + ox) % period) - period / 2
        dy = ((yy + oy) % period) - period / 2
        p = (dx * dx + dy * dy < (period * 0.3) ** 2).astype(np.float32)
    else:  # smooth noise, thresholded softly
        g = max(2, int(hr / (period * SUPER)))
        n = rng.random((g + 1, g + 1)).astype(np.float32)
        p = cv2.resize(n, (hr, hr), interpolation=cv2.INTER_CUBIC)
        p = np.clip((p - p.mean()) * 3 + 0.5, 0, 1)
    return p


def _scene(rng: np.random.Generator, res: int, variant: str, dist: str = "standard"):
    """One scene: image uint8 (res,res,3), labels int (res,res), objects list[dict], and the label map at the
    drawing resolution (res*SUPER, res*SUPER). Standard scenes draw no random numbers beyond the standard ones."""
    import cv2

    d, extra = DISTS[dist], dist != "standard"
    hr = res * SUPER
    textured = variant == "textured"
    n_obj = int(rng.integers(d["count"][0], d["count"][1] + 1))
    # background: black or a gray (tinted with a random hue beyond the standard ranges)
    gray = 0.0 if rng.random() < d["black"] else float(rng.uniform(0.05, d["gray"]))
    bg = np.full(3, gray, np.float32)
    aliased = False
    if extra:
        bg = _hsv(rng.random(), rng.uniform(0, d["bg_sat"]), gray)
        aliased = bool(rng.random() < d["aliased"])
    canvas = np.broadcast_to(bg, (hr, hr, 3)).astype(np.float32)
    if textured:
        p = _pattern(rng, hr)[..., None]
        g2 = float(np.clip(gray + rng.uniform(0.15, 0.35) * (1 if gray < 0.3 else -1), 0, 0.65))
        tint = _hsv(rng.random(), rng.uniform(0, 0.35), 1.0)
        canvas = (gray * (1 - p) + g2 * p) * tint[None, None, :]
    label_hr = np.zeros((hr, hr), np.int32)
    objects = []
    hues = []
    for i in range(1, n_obj + 1):
        # resample placements until at least 35 % of the object stays visible (exact labels need it)
        for _attempt in range(30):
            shape_idx = int(rng.integers(len(SHAPES)))
            size = float(rng.uniform(*d["size"]))
            x = float(rng.uniform(size / 2, 1 - size / 2))
            y = float(rng.uniform(size / 2, 1 - size / 2))
            angle = float(rng.uniform(-d["angle"], d["angle"])) if extra else 0.0
            m = shape_mask(SHAPES[shape_idx], x, y, size, hr, angle)
            # hues spread apart by >= 0.08 so two objects never share a colour
            for _h in range(50):
                hue = float(rng.random())
                if all(min(abs(hue - h), 1 - abs(hue - h)) >= 0.08 for h in hues):
                    break
            trial = label_hr.copy()
            trial[m] = i
            ok = all((trial == j).sum() >= 0.35 * o["_area"] for j, o in enumerate(objects, 1)) and m.sum() > 0
            if ok:
                break
        sat = float(rng.uniform(*d["sat"]))
        val = float(rng.uniform(*d["val"]))
        rgb = _hsv(hue, sat, val)
        if textured:
            p = _pattern(rng, hr)[..., None]
            rgb2 = _hsv(hue + rng.uniform(-0.06, 0.06), sat * rng.uniform(0.4, 1.0), val * rng.uniform(0.35, 0.6))
            fill = rgb[None, None, :] * (1 - p) + rgb2[None, None, :] * p
            canvas[m] = fill[m]
        else:
            canvas[m] = rgb
        if extra and rng.random() < d["outline"]:  # a dark or light rim one pixel wide, part of the object
            inner = cv2.erode(m.astype(np.uint8), np.ones((2 * SUPER + 1,) * 2, np.uint8)).astype(bool)
            rim = m & ~inner
            canvas[rim] = _hsv(hue, sat, 0.15) if rng.random() < 0.5 else np.array([1.0, 1.0, 1.0], np.float32)
        label_hr = trial
        hues.append(hue)
        objects.append({
            "shape": SHAPES[shape_idx], "shape_idx": shape_idx, "hue": hue,
            "color_idx": int(hue * N_COLOR_BINS) % N_COLOR_BINS, "rgb": [float(c) for c in rgb],
            "size": size, "x": x, "y": y, "angle": angle, "_area": int(m.sum()),
        })
    off = SUPER // 2
    if aliased:  # one drawing sample per pixel, the label's own: hard, jagged edges
        img = canvas[off::SUPER, off::SUPER]
    else:
        img = cv2.resize(canvas, (res, res), interpolation=cv2.INTER_AREA)
    img = np.clip(np.rint(img * 255), 0, 255).astype(np.uint8)
    labels = label_hr[off::SUPER, off::SUPER].astype(np.int64)
    for i, o in enumerate(objects, 1):
        o.pop("_area")
        o["visible"] = bool((labels == i).any())
        o["visible_px"] = int((labels == i).sum())
    return img, labels, objects, label_hr


def _check(variant: str, dist: str) -> None:
    if variant not in VARIANTS:
        raise ValueError(f"Unknown variant {variant!r}; choose one of {', '.join(VARIANTS)}.")
    if dist not in DISTS:
        raise ValueError(f"Unknown scene distribution {dist!r}; choose one of {', '.join(DISTS)}.")


def make_scenes(n: int, seed: int = 0, variant: str = "sprites", res: int = DEFAULT_RES, start: int = 0,
                dist: str = "standard"):
    """`n` scenes: images uint8 (n,res,res,3), labels int64 (n,res,res), objects (list of lists of dicts).

    Scene i is drawn from `default_rng([seed, start + i])` with the ranges of `DISTS[dist]`; objects carry shape,
    shape_idx, hue, color_idx, rgb, size, x, y (centre, in [0,1] of the side), angle, visible and visible_px.
    """
    _check(variant, dist)
    n, res = int(n), int(res)
    if n < 0:
        raise ValueError("The number of scenes must be >= 0.")
    if not 8 <= res <= 256:
        raise ValueError(f"Resolution {res} is out of range; use 8 to 256 pixels.")
    imgs = np.zeros((n, res, res, 3), np.uint8)
    labels = np.zeros((n, res, res), np.int64)
    objects = []
    for i in range(n):
        rng = np.random.default_rng([int(seed), int(start) + i])
        imgs[i], labels[i], objs, _ = _scene(rng, res, variant, dist)
        objects.append(objs)
    return imgs, labels, objects


def coverage_masks(cov: np.ndarray, objects_first: bool = False) -> np.ndarray:
    """Masks read from `scene_coverage` output (N, C, R, R). Plain: the coverage itself (its argmax is each pixel's
    majority). `objects_first`: every pixel an object touches goes to the objects (the background's share there is
    dropped, the objects' renormalised). FG-ARI scores only pixels labelled as objects, so this readout loses nothing
    on it where the background holds the label, and it scores far higher on FG-ARI (0.985 vs 0.919 on the 32x32
    sprites test scenes) while mIoU, which includes the background, drops (0.842 vs 0.951)."""
    cov = np.asarray(cov, np.float32)
    if not objects_first:
        return cov
    out = cov.copy()
    out[:, 0][cov[:, 1:].sum(1) > 0] = 0
    return out / out.sum(1, keepdims=True)


def scene_coverage(n: int, seed: int = 0, variant: str = "sprites", res: int = DEFAULT_RES,
                   start: int = 0, dist: str = "standard") -> np.ndarray:
    """The true anti-aliased coverage of the scenes `make_scenes(n, seed, variant, res, start)` draws: float32
    (N, MAX_OBJECTS + 1, res, res), the fraction of each pixel's SUPER x SUPER drawing samples that show the
    background (channel 0) or object i (channel i); sums to 1 over channels.

    The images are exactly these fractions' colour mixtures, while the label maps take one sample per pixel
    (nearest neighbour), so an edge pixel's label is decided by where that sample falls. Used as masks (see
    `coverage_masks`), the coverage is a reference for a model's masks on these scenes; it does not bound FG-ARI,
    which ignores background-labelled pixels. (Aliased scenes show one sample per pixel, not the mixture.)
    """
    _check(variant, dist)
    n, res = int(n), int(res)
    out = np.zeros((n, MAX_OBJECTS + 1, res, res), np.float32)
    for i in range(n):
        rng = np.random.default_rng([int(seed), int(start) + i])
        _, _, _, hr = _scene(rng, res, variant, dist)
        blocks = hr.reshape(res, SUPER, res, SUPER)
        for j in range(int(hr.max()) + 1):
            out[i, j] = (blocks == j).mean(axis=(1, 3))
    return out
