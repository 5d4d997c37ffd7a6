"""Video infill: RaMViD random-mask video diffusion (Höppe et al., TMLR 2022) on procedural clips.

    from backend.video import generated_clip, infill, load_model, preset_known
    clip, centers = generated_clip("bouncing", seed=0)          # uint8 (T, R, R, 3), true sprite centres
    result = infill(clip, preset_known("upsampling", 12), samples=2, steps=25, seed=0, centers=centers)
    result.samples, result.baselines, result.scores["sample 1"].per_frame_psnr, result.diversity
    model = load_model("bouncing")                              # cached; model.infill(clip, known, steps, seed)
"""

from backend.core.media import gif_bytes, png_bytes, webm_bytes
from backend.video.api import VideoModel, load_model
from backend.video.clips import (
    PRESETS,
    box_mask,
    clip_from_upload,
    filmstrip,
    fit_clip,
    generated_clip,
    preset_known,
    side_by_side,
)
from backend.video.data import EVAL_SEED, KINDS, TEST_SEED, make_videos
from backend.video.evaluation import task_table
from backend.video.infill import InfillResult, Scores, infill
from backend.video.metrics import BASELINES, baseline, clip_scores, generated_mask

__all__ = [
    "BASELINES",
    "EVAL_SEED",
    "KINDS",
    "PRESETS",
    "InfillResult",
    "Scores",
    "TEST_SEED",
    "VideoModel",
    "baseline",
    "box_mask",
    "clip_from_upload",
    "clip_scores",
    "filmstrip",
    "fit_clip",
    "generated_clip",
    "generated_mask",
    "gif_bytes",
    "infill",
    "load_model",
    "make_videos",
    "png_bytes",
    "preset_known",
    "side_by_side",
    "task_table",
    "webm_bytes",
]
