"""Slot Attention object discovery on generated multi-object scenes (Locatello et al., NeurIPS 2020).

Public API (kept stable; other pages and checks call it):
    load_model(variant) -> SlotModel with .segment(images, num_slots, iters, seed), .resolution, .num_slots
    make_scenes(n, seed, variant) -> images uint8 (N,R,R,3), labels int (N,R,R), objects
    fg_ari(labels, masks), miou(labels, masks), kmeans_segment(images, k)
    matched_slots(variant, n, seed, model) -> codes, factors, factor_names, discrete
    posterior_masks(images, seg): the per-pixel slot posterior given the image (a second readout)
    segment_scenes(...), dataset_metrics(...), probe_scores(...) for the page; viz helpers (numpy only)
"""

from backend.slots.api import (
    SceneReport,
    Segmentation,
    SlotModel,
    dataset_metrics,
    load_model,
    posterior_masks,
    segment_scenes,
)
from backend.slots.data import EVAL_SEED, SHAPES, VARIANTS, make_scenes
from backend.slots.metrics import ari, ari_per_image, fg_ari, kmeans_segment, miou, miou_per_image
from backend.slots.probe import FACTOR_NAMES, fit_probe, matched_slots, probe_scores
from backend.slots.viz import colorize, display_factor, fit_display, mask_image, overlay

__all__ = [
    "EVAL_SEED", "FACTOR_NAMES", "SHAPES", "VARIANTS", "SceneReport", "Segmentation", "SlotModel", "ari",
    "ari_per_image", "colorize", "dataset_metrics", "display_factor", "fg_ari", "fit_display", "fit_probe",
    "kmeans_segment", "load_model", "make_scenes", "mask_image", "matched_slots", "miou", "miou_per_image",
    "overlay", "posterior_masks", "probe_scores", "segment_scenes",
]
