"""Video infill: RaMViD random-mask video diffusion (Höppe et al., TMLR 2022) on procedural clips.

    from backend.video import load_model, make_videos
    model = load_model("bouncing")           # cached; model.num_frames, model.resolution
    clips = make_videos(n, seed=0)           # uint8 (N, T, R, R, 3)
    out = model.infill(clip, known, steps=25, seed=0, region_mask=None)
"""

from backend.video.data import EVAL_SEED, KINDS, make_videos
from backend.video.metrics import BASELINES, baseline, clip_scores


def load_model(name: str = "bouncing", device=None):
    """The shipped model (cached once per process); see `backend.video.api.VideoModel`."""
    from backend.video.api import load_model as _load_model

    return _load_model(name, device)


__all__ = ["BASELINES", "EVAL_SEED", "KINDS", "baseline", "clip_scores", "load_model", "make_videos"]
