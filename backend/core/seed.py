"""Seeding helper: one call makes python, numpy and torch draws reproducible."""

from __future__ import annotations

import random

import numpy as np


def set_seed(seed: int, deterministic: bool = False) -> np.random.Generator:
    """Seed python, numpy and torch (all devices); return a fresh numpy Generator for `seed`."""
    import torch

    seed = int(seed)
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    if deterministic:
        torch.use_deterministic_algorithms(True, warn_only=True)
    return np.random.default_rng(seed)
