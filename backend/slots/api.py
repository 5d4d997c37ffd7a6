"""Public face of the slots domain: load a shipped model, and one call per page request.

- `load_model(variant)`: the shipped `SlotModel`, with the readout its checkpoint chose on validation scenes.
- `segment_scenes(...) -> SceneReport`: generated scenes, their segmentation, per-scene scores, the posterior
  readout and the checkpoint's held-out report.
- `segment_upload(...) -> UploadSegmentation`: a user's image, segmented.
- `dataset_metrics(...) -> DatasetScores`: per-scene scores of the model, its posterior readout, k-means and the
  true-coverage references on the same held-out scenes.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from backend.core import cached, get_device, load_checkpoint
from backend.slots.inference import Segmentation, SlotModel, posterior_masks
from backend.slots.report import SlotsReport, checkpoint_name, model_report

MAX_SCENES = 256


def build_model(payload: dict, device=None, name: str = "") -> SlotModel:
    """A SlotModel from a checkpoint payload, with the readout (iterations, merging) of its "evaluation" entry."""
    from backend.slots.model import SlotAttentionAE

    dev = get_device(device)
    net = SlotAttentionAE(payload["config"])
    net.load_state_dict(payload["state_dict"])
    readout = (payload.get("evaluation") or {}).get("readout") or {}
    return SlotModel(net.to(dev), dev, name, iters=readout.get("iters"), merge=readout.get("merge"))


@cached
def load_model(variant: str = "sprites", device: str | None = None, untrained: bool = False) -> SlotModel:
    """The shipped model for `variant` ("sprites" or "textured"), loaded once per process.

    `untrained=True` gives the same architecture with its seeded initial weights (a probe baseline).
    """
    name = checkpoint_name(variant)
    payload, _ = load_checkpoint(name)
    if untrained:
        import torch

        from backend.slots.model import SlotAttentionAE

        torch.manual_seed(0)
        payload = {**payload, "state_dict": SlotAttentionAE(payload["config"]).state_dict()}
    return build_model(payload, device, name + (" (untrained)" if untrained else ""))


def _slot_shares(seg: Segmentation) -> np.ndarray:
    """(N, K) share of each image's pixels whose argmax is each slot."""
    k = seg.masks.shape[1]
    return (seg.labels[:, None] == np.arange(k)[None, :, None, None]).mean((2, 3))


@dataclass
class SceneReport:
    images: np.ndarray  # uint8 (N,R,R,3)
    labels: np.ndarray  # int (N,R,R) ground truth
    objects: list  # per scene, list of object dicts
    seg: Segmentation
    fg_ari: np.ndarray  # (N,) per image
    miou: np.ndarray  # (N,) per image
    posterior: np.ndarray  # float32 (N,K,R,R): the posterior readout (`posterior_masks`)
    posterior_fg_ari: np.ndarray  # (N,)
    slot_shares: np.ndarray  # (N,K) share of pixels per slot
    report: SlotsReport  # the checkpoint's held-out evaluation
    mean_fg_ari: float = 0.0
    mean_miou: float = 0.0


def segment_scenes(variant: str = "sprites", n: int = 16, seed: int = 0, num_slots: int | None = None,
                   iters: int | None = None, merge: float | bool | None = None, passes: int = 1) -> SceneReport:
    """Generate `n` scenes, segment them with the shipped model and score each one (alpha masks and posterior)."""
    from backend.slots.data import make_scenes
    from backend.slots.metrics import ari_per_image, miou_per_image

    n = int(n)
    if not 1 <= n <= MAX_SCENES:
        raise ValueError(f"Ask for 1 to {MAX_SCENES} scenes; got {n}.")
    model = load_model(variant)
    imgs, labels, objs = make_scenes(n, seed=int(seed), variant=variant, res=model.resolution)
    seg = model.segment(imgs, num_slots=num_slots, iters=iters, seed=0, merge=merge, passes=passes)
    post = posterior_masks(imgs, seg)
    fg, mi = ari_per_image(labels, seg.masks, True), miou_per_image(labels, seg.masks)
    return SceneReport(imgs, labels, objs, seg, fg, mi, post, ari_per_image(labels, post, True), _slot_shares(seg),
                       model_report(variant), float(fg.mean()), float(mi.mean()))


@dataclass
class UploadSegmentation:
    image: np.ndarray  # uint8 (H,W,3), the upload shrunk to at most 512 px a side
    seg: Segmentation  # one image, at the image's size
    labels: np.ndarray  # int (H,W) argmax over slots
    slot_shares: np.ndarray  # (K,) share of pixels per slot


def segment_upload(data, variant: str = "sprites", num_slots: int | None = None, iters: int | None = None,
                   merge: float | bool | None = None, passes: int = 1) -> UploadSegmentation:
    """Decode an uploaded image (bytes or a file), shrink it for display and segment it with the shipped model;
    an unreadable, tiny or huge file raises ValueError with a sentence for the user."""
    from backend.core.uploads import load_image
    from backend.slots.viz import fit_display

    img = fit_display(load_image(data))
    seg = load_model(variant).segment(img, num_slots=num_slots, iters=iters, seed=0, merge=merge, passes=passes)
    return UploadSegmentation(img, seg, seg.labels[0], _slot_shares(seg)[0])


@dataclass
class DatasetScores:
    """Per-scene scores on the same held-out scenes: scores[method][metric] -> (n,) array; means likewise."""

    variant: str
    n: int
    seed: int
    scores: dict
    means: dict


def dataset_metrics(variant: str = "sprites", n: int = 100, seed: int = 10_000, progress=None) -> DatasetScores:
    """Per-image FG-ARI, mIoU (and MSE for the model) of the model's alpha masks ("model"), its posterior readout
    ("posterior"), the k-means baseline ("kmeans") and the true coverage read out as masks by majority
    ("coverage") and objects first ("coverage_objects_first") on the same `n` scenes."""
    from backend.core import as_progress
    from backend.slots.data import coverage_masks, make_scenes, scene_coverage
    from backend.slots.metrics import KMEANS_POS_WEIGHT, ari_per_image, kmeans_segment, miou_per_image

    p = as_progress(progress)
    n, seed = int(n), int(seed)
    model = load_model(variant)
    imgs, labels, _ = make_scenes(n, seed=seed, variant=variant, res=model.resolution)
    p.update(0, n + 1, "segmenting with Slot Attention")
    seg = model.segment(imgs, seed=0)
    km = np.zeros(labels.shape, np.int64)
    for i in range(0, n, 8):
        p.update(i + 1, n + 1, "k-means baseline")
        km[i:i + 8] = kmeans_segment(imgs[i:i + 8], k=model.num_slots, pos_weight=KMEANS_POS_WEIGHT[variant])
    p.update(n + 1, n + 1, "done")
    cov = scene_coverage(n, seed=seed, variant=variant, res=model.resolution)
    masks = {"model": seg.masks, "posterior": posterior_masks(imgs, seg), "kmeans": km,
             "coverage": coverage_masks(cov), "coverage_objects_first": coverage_masks(cov, True)}
    scores = {k: {"fg_ari": ari_per_image(labels, mk, True), "miou": miou_per_image(labels, mk)}
              for k, mk in masks.items()}
    scores["model"]["mse"] = (((seg.recon.astype(np.float32) - imgs.astype(np.float32)) / 255.0) ** 2).mean((1, 2, 3))
    means = {k: {m: float(v.mean()) for m, v in d.items()} for k, d in scores.items()}
    return DatasetScores(variant, n, seed, scores, means)
