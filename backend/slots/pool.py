"""Training data of the Slot Attention recipes: the fixed pool of generated scenes and a teacher's masks of it.

The pool is `make_scenes(n, seed=TRAIN_SEED_BASE + seed, variant)`: scene i is seeded by [seed, i] alone, so a
smaller pool is the first scenes of a larger one. It is rendered once (by worker processes when large) and cached
in `runs/NAME/`, so a resumed run does not redraw it.
"""

from __future__ import annotations

import numpy as np

from backend.slots.data import make_scenes


def training_pool(name: str, n: int, seed: int, variant: str, res: int, dist: str = "standard") -> np.ndarray:
    """uint8 images (n, res, res, 3) of the training pool drawn with the ranges of `dist`, cached in runs/NAME/."""
    from backend.core import registry

    tag = "" if dist == "standard" else f"-{dist}"
    path = registry.RUNS_DIR / name / f"pool-{variant}{tag}-{n}-{seed}-{res}.npy"
    if path.exists():
        return np.load(path)
    imgs = render_parallel(n, seed, variant, res, dist=dist)
    path.parent.mkdir(parents=True, exist_ok=True)
    np.save(path, imgs)
    return imgs


def _render_images(args) -> np.ndarray:
    n, seed, variant, res, start, dist = args
    return make_scenes(n, seed=seed, variant=variant, res=res, start=start, dist=dist)[0]


def render_parallel(n: int, seed: int, variant: str, res: int, chunk: int = 2500, dist: str = "standard") -> np.ndarray:
    """Images of `make_scenes(n, seed, ...)`, rendered in chunks by worker processes for large pools (the same
    result as one call)."""
    import os
    from concurrent.futures import ProcessPoolExecutor
    from multiprocessing import get_context

    workers = min(os.cpu_count() or 1, -(-n // chunk))
    if workers < 2:
        return make_scenes(n, seed=seed, variant=variant, res=res, dist=dist)[0]
    jobs = [(min(chunk, n - a), seed, variant, res, a, dist) for a in range(0, n, chunk)]
    with ProcessPoolExecutor(workers, mp_context=get_context("spawn")) as ex:
        return np.concatenate(list(ex.map(_render_images, jobs)))


def teacher_masks(net, device, images: np.ndarray, passes: int, iters: int, merge: float | None,
                  chunk: int = 500):
    """The self-distillation targets: a frozen network `net` segments every pool image (uint8 (N, R, R, 3)) with
    test-time averaging over `passes` at `iters` iterations, duplicate slots merged at `merge` (None: not merged)
    -> float16 tensor (N, K, R, R) on `device`."""
    import torch

    from backend.slots.inference import SlotModel

    model = SlotModel(net.eval(), device, iters=int(iters))
    out = []
    for a in range(0, len(images), chunk):
        m = model.segment(images[a:a + chunk], seed=a, merge=merge if merge else False, passes=int(passes)).masks
        out.append(torch.from_numpy(m).half())
    return torch.cat(out).to(device)
