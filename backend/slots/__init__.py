"""Slot Attention object discovery on generated multi-object scenes (Locatello et al., NeurIPS 2020).

Public API:
    load_model(variant) -> SlotModel with .segment(images, num_slots, iters, seed, merge, passes)
    make_scenes(n, seed, variant, dist) -> images uint8 (N,R,R,3), labels int (N,R,R), objects
    segment_scenes(...) -> SceneReport, segment_upload(...) -> UploadSegmentation,
    dataset_metrics(...) -> DatasetScores, model_report(variant) -> SlotsReport: one call per page request
    fg_ari, miou, ari (and per-image versions), kmeans_segment: metrics and the baseline
    posterior_masks(images, seg), merge_duplicate_slots(masks, tau): readouts
    matched_slots, fit_probe, probe_scores: the downstream property probe
    colorize, overlay, mask_image, fit_display, display_factor: numpy pictures
"""

from backend.slots.api import (
    DatasetScores,
    SceneReport,
    UploadSegmentation,
    build_model,
    dataset_metrics,
    load_model,
    segment_scenes,
    segment_upload,
)
from backend.slots.data import (
    DISTS,
    EVAL_SEED,
    SHAPES,
    TEST_SEED,
    TRAIN_SEED_BASE,
    VARIANTS,
    coverage_masks,
    make_scenes,
    scene_coverage,
)
from backend.slots.inference import Segmentation, SlotModel, match_slots, merge_duplicate_slots, posterior_masks
from backend.slots.metrics import KMEANS_POS_WEIGHT, ari, ari_per_image, fg_ari, kmeans_segment, miou, miou_per_image
from backend.slots.probe import FACTOR_NAMES, fit_probe, matched_slots, probe_scores
from backend.slots.report import SlotsReport, model_report
from backend.slots.viz import colorize, display_factor, fit_display, mask_image, overlay

__all__ = [
    "DISTS", "EVAL_SEED", "FACTOR_NAMES", "TEST_SEED", "KMEANS_POS_WEIGHT", "SHAPES", "TRAIN_SEED_BASE", "VARIANTS", "DatasetScores",
    "SceneReport", "Segmentation", "SlotModel", "SlotsReport", "UploadSegmentation", "ari", "ari_per_image",
    "build_model", "colorize", "coverage_masks", "dataset_metrics", "display_factor", "fg_ari", "fit_display",
    "fit_probe", "kmeans_segment", "load_model", "make_scenes", "mask_image", "match_slots", "matched_slots",
    "merge_duplicate_slots", "miou", "miou_per_image", "model_report", "overlay", "posterior_masks", "probe_scores",
    "scene_coverage", "segment_scenes", "segment_upload",
]
