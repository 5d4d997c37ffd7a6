"""The zoo's small classifiers (16x16 grey digits) and the training-time augmentations.

Every network is `features` (frozen in head-only transfer) followed by a linear `head`, so "pretrained on
fonts, fine-tune the head" and "fine-tune everything" are the same module with different frozen prefixes.
"""

from __future__ import annotations

import math

import torch
import torch.nn as nn
import torch.nn.functional as F

ARCHS = ("logistic", "mlp-64", "mlp-256", "cnn-small", "cnn-wide")
AUGS = ("none", "affine", "noise", "contrast", "randaug", "mixup")


class Classifier(nn.Module):
    def __init__(self, features: nn.Module, width: int):
        super().__init__()
        self.features = features
        self.head = nn.Linear(width, 10)

    def forward(self, x):  # x: (N, 1, 16, 16) in [0, 1]
        return self.head(self.features((x - 0.5) / 0.5))


def build(arch: str) -> Classifier:
    if arch == "logistic":
        return Classifier(nn.Flatten(), 256)
    if arch in ("mlp-64", "mlp-256"):
        w = int(arch.split("-")[1])
        return Classifier(nn.Sequential(nn.Flatten(), nn.Linear(256, w), nn.ReLU()), w)
    if arch == "cnn-small":
        f = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
                          nn.Conv2d(4, 8, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten())
        return Classifier(f, 8 * 16)
    if arch == "cnn-wide":
        f = nn.Sequential(nn.Conv2d(1, 8, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
                          nn.Conv2d(8, 16, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten())
        return Classifier(f, 16 * 16)
    raise ValueError(f"Unknown architecture {arch!r}; choose one of {', '.join(ARCHS)}.")


# -- augmentations (a batch (N, 1, H, W) in [0, 1]; every draw from the torch.Generator `g`) -------------
def _u(g, n, lo, hi):
    return lo + (hi - lo) * torch.rand(n, generator=g)


def _warp(x, angle_deg, scale, shear, tx, ty):
    """Per-image affine warp (angles in degrees, translations in pixels), zero (black) fill."""
    n, _, h, _ = x.shape
    a = angle_deg * math.pi / 180
    cos, sin = torch.cos(a) / scale, torch.sin(a) / scale
    theta = torch.zeros(n, 2, 3)
    theta[:, 0, 0], theta[:, 0, 1] = cos, -sin + shear
    theta[:, 1, 0], theta[:, 1, 1] = sin, cos
    theta[:, 0, 2], theta[:, 1, 2] = 2 * tx / h, 2 * ty / h
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    return F.grid_sample(x, grid, padding_mode="zeros", align_corners=False)


def affine(x, g, strength: float = 1.0):
    n = len(x)
    return _warp(x, _u(g, n, -15, 15) * strength, 1 + _u(g, n, -0.1, 0.1) * strength, _u(g, n, -0.15, 0.15) * strength,
                 _u(g, n, -1.5, 1.5) * strength, _u(g, n, -1.5, 1.5) * strength)


def noise(x, g):
    sd = _u(g, len(x), 0.0, 0.3).view(-1, 1, 1, 1)
    return (x + sd * torch.randn(x.shape, generator=g)).clamp(0, 1)


def contrast(x, g):
    c = _u(g, len(x), 0.3, 1.0).view(-1, 1, 1, 1)
    m = x.mean((1, 2, 3), keepdim=True)
    return ((x - m) * c + m).clamp(0, 1)


def blur(x, g):
    k = torch.tensor([0.25, 0.5, 0.25])
    k2 = (k[:, None] * k[None, :]).view(1, 1, 3, 3)
    return F.conv2d(x, k2, padding=1)


def randaug(x, g):
    """A light RandAugment: each image gets two ops drawn from six, at a random magnitude up to 0.6."""
    out = x
    for _ in range(2):
        op = torch.randint(0, 6, (len(x),), generator=g)
        m = _u(g, len(x), 0.0, 0.6)
        z = torch.zeros(len(x))
        cands = [
            _warp(out, (2 * torch.rand(len(x), generator=g) - 1) * 30 * m, 1 + z, z, z, z),  # rotate
            _warp(out, z, 1 + z, (2 * torch.rand(len(x), generator=g) - 1) * 0.4 * m, z, z),  # shear
            _warp(out, z, 1 + z, z, (2 * torch.rand(len(x), generator=g) - 1) * 3 * m, z),  # translate x
            contrast(out, g),
            (out + 0.3 * m.view(-1, 1, 1, 1) * torch.randn(out.shape, generator=g)).clamp(0, 1),  # noise
            blur(out, g),
        ]
        stack = torch.stack(cands)  # (6, N, 1, H, W)
        out = stack[op, torch.arange(len(x))]
    return out


def augment(x, y, aug: str, g):
    """(images, labels) -> (augmented images, soft or hard targets)."""
    if aug == "none":
        return x, y
    if aug == "affine":
        return affine(x, g), y
    if aug == "noise":
        return noise(x, g), y
    if aug == "contrast":
        return contrast(x, g), y
    if aug == "randaug":
        return randaug(x, g), y
    if aug == "mixup":
        lam = _beta(g, len(x), 0.4)
        perm = torch.randperm(len(x), generator=g)
        lv = lam.view(-1, 1, 1, 1)
        onehot = F.one_hot(y, 10).float()
        return lv * x + (1 - lv) * x[perm], lam[:, None] * onehot + (1 - lam[:, None]) * onehot[perm]
    raise ValueError(f"Unknown augmentation {aug!r}; choose one of {', '.join(AUGS)}.")


def _beta(g, n, a):
    """Beta(a, a) draws, seeded from the torch generator (torch's Beta takes no generator)."""
    import numpy as np

    seed = int(torch.randint(0, 2**31 - 1, (1,), generator=g))
    return torch.as_tensor(np.random.default_rng(seed).beta(a, a, n), dtype=torch.float32)
