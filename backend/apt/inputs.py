"""Checks of what a user hands the APT functions (images, classes, classifiers, settings); mistakes raise
ValueError with a sentence the user can act on."""

from __future__ import annotations

import numpy as np

from backend.apt.data import SIZE
from backend.apt.loading import load_models

MODES = ("apt", "apt+pgd", "pgd")


def check_image(img) -> np.ndarray:
    a = np.asarray(img)
    if a.ndim == 2:
        a = np.repeat(a[..., None], 3, axis=-1)
    if a.ndim != 3 or a.shape[:2] != (SIZE, SIZE):
        raise ValueError(f"Images must be {SIZE}×{SIZE} (got shape {a.shape}); convert drawings and uploads "
                         f"with prepare_image() first.")
    if a.dtype != np.uint8:
        raise ValueError("Images must be uint8 (0–255).")
    return a[..., :3]


def check_classifier(name: str) -> str:
    names = load_models().classifiers
    if name not in names:
        raise ValueError(f"Unknown classifier {name!r}; choose one of {', '.join(names)}.")
    return name


def check_label(label, what="label") -> int:
    try:
        v = int(label)
    except (TypeError, ValueError) as e:
        raise ValueError(f"The {what} must be a digit 0–9 (got {label!r}).") from e
    if not 0 <= v <= 9:
        raise ValueError(f"The {what} must be a digit 0–9 (got {v}).")
    return v


def check_mode(mode: str) -> str:
    if mode not in MODES:
        raise ValueError(f"Unknown mode {mode!r}; choose one of {', '.join(MODES)}.")
    return mode


def apt_settings(steps=None, **overrides):
    """The APT settings (`backend.apt.tuning.APTSettings`) with `steps` and any named settings overridden;
    None leaves a default in place."""
    from backend.apt.tuning import APTSettings

    s = APTSettings()
    if steps is not None:
        if not 0 <= int(steps) <= 2000:
            raise ValueError("APT steps must be between 0 and 2000.")
        s.steps = int(steps)
    for k, v in overrides.items():
        if v is None:
            continue
        if not hasattr(s, k):
            raise ValueError(f"Unknown APT setting {k!r}.")
        if float(v) < 0:
            raise ValueError(f"The APT setting {k} must be ≥ 0 (got {v}).")
        setattr(s, k, type(getattr(s, k))(v))
    return s
