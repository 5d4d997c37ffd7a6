"""Classifier accuracy on digit arrays, clean and under L∞ PGD (Madry et al. 2018)."""

from __future__ import annotations

import numpy as np
import torch

from backend.apt.tuning import pgd_tensor


def accuracy(model, x: np.ndarray, y: np.ndarray, device="cpu", batch: int = 512) -> float:
    """Share of digits x (N, 32, 32) in [-1, 1] that `model` classifies as y."""
    model.eval()
    correct = 0
    with torch.no_grad():
        for i in range(0, len(x), batch):
            xb = torch.as_tensor(x[i: i + batch], device=device)[:, None]
            correct += int((model(xb).argmax(1).cpu().numpy() == y[i: i + batch]).sum())
    return correct / max(1, len(x))


def pgd_accuracy(model, x: np.ndarray, y: np.ndarray, eps01: float, steps: int = 40, device="cpu",
                 seed: int = 0, batch: int = 256) -> float:
    """Accuracy under L∞ PGD with `eps01` in [0, 1] units (2·eps01 in the [-1, 1] data units)."""
    model.eval()
    correct = 0
    for i in range(0, len(x), batch):
        xb = torch.as_tensor(x[i: i + batch], device=device)[:, None]
        yb = torch.as_tensor(y[i: i + batch], device=device)
        with torch.enable_grad():
            xa = pgd_tensor(model, xb, yb, eps=2 * eps01, steps=steps, seed=seed + i)
        with torch.no_grad():
            correct += int((model(xa).argmax(1) == yb).sum())
    return correct / max(1, len(x))
