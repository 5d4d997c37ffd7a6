"""One infill request: a clip and its given frames (and region) in, samples, baselines and scores out.

`infill(clip, known, ...)` is the page's single call. It builds the mask of pixels to generate, draws
`samples` infillings from the model (none when `samples=0`: baselines and their scores only; nothing
given: unconditional clips), fills the same pixels with the copy baselines, and scores everything on
the generated pixels: PSNR and SSIM overall and per frame, the sprites' centroid error when the true
centres are known, and best-of-N PSNR and sample diversity when there are several samples.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from backend.video.api import load_model, resize_frames
from backend.video.metrics import BASELINES, baseline, clip_scores, diversity, generated_mask


@dataclass
class Scores:
    """One prediction scored against the clip on its generated pixels (per-frame arrays: NaN on frames
    with nothing generated)."""

    psnr: float
    ssim: float
    per_frame_psnr: np.ndarray
    per_frame_ssim: np.ndarray
    centroid_px: float | None = None  # mean distance of the true sprite centres to the matched blobs


@dataclass
class InfillResult:
    clip: np.ndarray  # (T, H, W, 3) uint8, the clip as given (its generated pixels are the ground truth)
    known: np.ndarray  # (T,) bool, frames given to the model
    generated: np.ndarray  # (T, H, W) bool, pixels the model generates
    samples: np.ndarray  # (N, T, H, W, 3) uint8; N = 0 when no sample was asked for
    baselines: dict  # name ("nearest", "linear", "last") -> (T, H, W, 3) uint8
    scores: dict  # "sample 1", "sample 2", ... and the baseline names -> Scores
    unconditional: bool = False  # nothing given: the samples are unconditional clips
    best_of_psnr: float | None = None  # with several samples: the best sample's PSNR
    diversity: float | None = None  # with several samples: mean pairwise RMS difference (0-255)
    settings: dict = field(default_factory=dict)  # the sampler settings used

    @property
    def model_psnr(self) -> float | None:
        """Mean PSNR of the samples (None without samples)."""
        vals = [self.scores[f"sample {i + 1}"].psnr for i in range(len(self.samples))]
        return float(np.mean(vals)) if vals else None

    @property
    def model_centroid_px(self) -> float | None:
        vals = [self.scores[f"sample {i + 1}"].centroid_px for i in range(len(self.samples))]
        return float(np.mean(vals)) if vals and vals[0] is not None else None


def _score(pred: np.ndarray, clip: np.ndarray, known: np.ndarray, region, centers) -> Scores:
    s = clip_scores(pred, clip, known, centers, region)
    return Scores(s["psnr"], s["ssim"], s["per_frame_psnr"], s["per_frame_ssim"], s.get("centroid_px"))


def _draw(model, clip, known, samples, steps, seed, region, eta, resample, unconditional, progress) -> np.ndarray:
    if unconditional:
        out = model.generate(samples, steps=steps, seed=seed, eta=eta, progress=progress)
        if out.shape[2:4] != clip.shape[1:3]:
            out = np.stack([resize_frames(o, *clip.shape[1:3]) for o in out])
        return out
    return model.infill_samples(clip, known, samples, steps=steps, seed=seed, region_mask=region, eta=eta,
                                resample=resample, progress=progress)


def infill(clip, known, samples: int = 1, steps: int = 25, seed: int = 0, region=None, eta: float = 0.0,
           resample: int = 1, centers=None, model: str = "bouncing", device=None, progress=None) -> InfillResult:
    """Infill `clip` (T, H, W, 3) uint8 with the frames `known` (T,) bool given, plus the pixels of `region`
    (T, H, W) bool, with `samples` draws of the model (DDIM `steps`, `eta`, RePaint `resample`, `seed`).

    `centers` (T, n, 2): the sprites' true centres, for the centroid error. Raises ValueError when every
    pixel is given or an input does not fit the model (a sentence the user can act on).
    """
    net = load_model(model, device)
    clip = net.check_clip(clip)
    known = np.asarray(known, bool).reshape(-1)
    if known.shape[0] != len(clip):
        raise ValueError(f"`known` has {known.shape[0]} entries but the clip has {len(clip)} frames.")
    if region is not None and np.shape(region) != clip.shape[:3]:
        raise ValueError(f"The region mask has shape {np.shape(region)}; it must be (T, H, W) = {clip.shape[:3]}.")
    gen = generated_mask(known, clip.shape, region)
    if not gen.any():
        raise ValueError("Every frame is given, so there is nothing to generate: leave out some frames, or add a "
                         "rectangle to regenerate.")
    if not 0 <= int(samples) <= 16:
        raise ValueError("The number of samples must be between 0 and 16.")
    unconditional = bool(gen.all())
    drawn = np.zeros((0, *clip.shape), np.uint8)
    if int(samples):
        drawn = _draw(net, clip, known, int(samples), int(steps), int(seed), region, float(eta), int(resample),
                      unconditional, progress)
    bases = {b: baseline(clip, known, b, region) for b in BASELINES}
    scores = {f"sample {i + 1}": _score(x, clip, known, region, centers) for i, x in enumerate(drawn)}
    scores.update({b: _score(x, clip, known, region, centers) for b, x in bases.items()})
    result = InfillResult(clip, known, gen, drawn, bases, scores, unconditional,
                          settings={"samples": int(samples), "steps": int(steps), "seed": int(seed), "eta": float(eta),
                                    "resample": int(resample), "model": model})
    if len(drawn) > 1:
        result.best_of_psnr = max(scores[f"sample {i + 1}"].psnr for i in range(len(drawn)))
        result.diversity = diversity(drawn, gen)
    return result
