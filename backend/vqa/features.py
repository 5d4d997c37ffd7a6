"""Frozen representations of sprites scenes as token sets (N, T, F) for the downstream VQA transformer.

- `slots`: the shipped slots-sprites model's 5 slots (64-d, no merging, slot noise seed 0).
- `slots_mask`: the same slots plus each slot's mask centroid (x, y) and area (share of the image).
- `grid4` / `grid8`: the same model's CNN encoder features (after its position embedding and MLP), average-pooled to
  a 4x4 / 8x8 grid, each cell with its centre coordinates (dense, not object-centric).
- `autoencoder`: the 64-d global latent of a small CNN autoencoder trained on the same training scenes (one token).
- `kmeans`: 5 k-means segments (the slots domain's baseline): mean colour, centroid and area of each.
- `untrained`: the slot model's architecture with its seeded initial weights (slots + mask features).
- `gt`: ground-truth object tokens (shape one-hot, hue as cos/sin, x, y, size, present), padded to 4: upper bound.
- `question`: one constant token: the question-only lower bound.
"""

from __future__ import annotations

import numpy as np

from backend.slots.data import MAX_OBJECTS, SHAPES

REPRESENTATIONS = ("question", "grid4", "grid8", "slots", "slots_mask", "untrained", "kmeans", "autoencoder", "gt")
LABELS = {"question": "question only", "grid4": "CNN grid 4x4", "grid8": "CNN grid 8x8", "slots": "slots",
          "slots_mask": "slots + mask centroid/area", "untrained": "untrained slot model (+ mask features)",
          "kmeans": "k-means segments", "autoencoder": "CNN autoencoder (global latent)", "gt": "ground-truth objects"}
FEAT_DIMS = {"question": 1, "grid4": 34, "grid8": 34, "slots": 64, "slots_mask": 67, "untrained": 67, "kmeans": 6,
             "autoencoder": 64, "gt": 10}
OBJECT_CENTRIC = ("slots", "slots_mask", "untrained", "kmeans")  # token = one slot / segment, masks to draw


def mask_features(masks: np.ndarray) -> np.ndarray:
    """(N, K, H, W) soft masks -> (N, K, 3): centroid x, centroid y (in [0, 1] of the side) and area share."""
    n, k, h, w = masks.shape
    yy, xx = np.mgrid[0:h, 0:w]
    mass = masks.sum((2, 3))
    safe = np.maximum(mass, 1e-6)
    cx = (masks * (xx / max(w - 1, 1))).sum((2, 3)) / safe
    cy = (masks * (yy / max(h - 1, 1))).sum((2, 3)) / safe
    return np.stack([cx, cy, mass / (h * w)], -1).astype(np.float32)


def _slot_tokens(model, images: np.ndarray, with_masks: bool) -> tuple[np.ndarray, np.ndarray]:
    seg = model.segment(images, seed=0, merge=False)
    tok = seg.slots
    if with_masks:
        tok = np.concatenate([tok, mask_features(seg.masks)], -1)
    return tok.astype(np.float32), seg.masks


def _grid_tokens(model, images: np.ndarray, cells: int, batch: int = 256) -> np.ndarray:
    import torch
    import torch.nn.functional as F

    from backend.slots.inference import to_model_input

    r = model.resolution
    x = to_model_input(images, r)
    out = []
    with model.lock, torch.inference_mode():
        for s in range(0, len(x), batch):
            xb = torch.from_numpy(x[s:s + batch]).permute(0, 3, 1, 2).float().div(127.5).sub(1)
            h = model.net.encode(xb.to(model.device))  # (B, R*R, C)
            h = h.transpose(1, 2).reshape(len(xb), -1, r, r)
            out.append(F.adaptive_avg_pool2d(h, cells).flatten(2).transpose(1, 2).float().cpu().numpy())
    feats = np.concatenate(out)
    c = (np.arange(cells) + 0.5) / cells
    pos = np.stack(np.meshgrid(c, c), -1).reshape(1, cells * cells, 2)  # (x, y) of each cell centre
    return np.concatenate([feats, np.broadcast_to(pos, (len(feats), cells * cells, 2))], -1).astype(np.float32)


def kmeans_tokens(images: np.ndarray, k: int = 5) -> tuple[np.ndarray, np.ndarray]:
    """k-means segments as tokens (N, k, 6): mean RGB in [0, 1], centroid x, y, area; and one-hot masks."""
    from backend.slots.metrics import KMEANS_POS_WEIGHT, kmeans_segment

    lab = kmeans_segment(images, k=k, pos_weight=KMEANS_POS_WEIGHT["sprites"], seed=0)
    masks = (lab[:, None] == np.arange(k)[None, :, None, None]).astype(np.float32)
    rgb = np.einsum("nkhw,nhwc->nkc", masks, images.astype(np.float32) / 255.0)
    rgb /= np.maximum(masks.sum((2, 3)), 1.0)[..., None]
    return np.concatenate([rgb, mask_features(masks)], -1).astype(np.float32), masks


def gt_tokens(objects: list) -> np.ndarray:
    """Ground-truth object tokens (N, MAX_OBJECTS, 10), zero rows for absent objects."""
    out = np.zeros((len(objects), MAX_OBJECTS, 10), np.float32)
    for i, objs in enumerate(objects):
        for j, o in enumerate(objs[:MAX_OBJECTS]):
            out[i, j, SHAPES.index(o["shape"])] = 1.0
            a = 2 * np.pi * o["hue"]
            out[i, j, 4:] = [np.cos(a), np.sin(a), o["x"], o["y"], o["size"], 1.0]
    return out


def extract(rep: str, images: np.ndarray, objects: list | None = None, autoencoder=None,
            with_masks: bool = False):
    """Tokens (N, T, FEAT_DIMS[rep]) of `rep` for uint8 images (N, R, R, 3); with `with_masks`, also the masks each
    token covers (N, T, R, R) for object-centric representations (None otherwise)."""
    from backend.slots.api import load_model as load_slots

    images = np.asarray(images)
    n = len(images)
    masks = None
    if rep == "question":
        tok = np.zeros((n, 1, 1), np.float32)
    elif rep == "gt":
        if objects is None:
            raise ValueError("Ground-truth tokens need the scenes' objects; pass the scenes from make_scenes.")
        tok = gt_tokens(objects)
    elif rep in ("slots", "slots_mask", "untrained"):
        tok, masks = _slot_tokens(load_slots("sprites", untrained=rep == "untrained"), images, rep != "slots")
    elif rep in ("grid4", "grid8"):
        tok = _grid_tokens(load_slots("sprites"), images, 4 if rep == "grid4" else 8)
    elif rep == "kmeans":
        tok, masks = kmeans_tokens(images)
    elif rep == "autoencoder":
        if autoencoder is None:
            raise ValueError("The autoencoder representation needs the trained autoencoder (load_model).")
        tok = autoencoder.latents(images)[:, None]
    else:
        raise ValueError(f"Unknown representation {rep!r}; choose one of {', '.join(REPRESENTATIONS)}.")
    return (tok, masks) if with_masks else tok
