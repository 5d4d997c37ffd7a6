"""The page's one call, `backend.video.infill`: samples, the generated mask, baselines and their scores."""

from __future__ import annotations

import numpy as np
import pytest

from backend.video import (
    BASELINES,
    InfillResult,
    box_mask,
    filmstrip,
    generated_clip,
    generated_mask,
    infill,
    preset_known,
    side_by_side,
)


@pytest.fixture(scope="module")
def sprites():
    return generated_clip("bouncing", seed=3)


def test_infill_returns_samples_mask_baselines_and_scores(sprites):
    clip, centers = sprites
    known = preset_known("upsampling", 12)
    r = infill(clip, known, samples=2, steps=3, seed=0, eta=1.0, centers=centers)
    assert isinstance(r, InfillResult) and r.samples.shape == (2, *clip.shape) and r.samples.dtype == np.uint8
    assert np.array_equal(r.generated, generated_mask(known, clip.shape)) and not r.unconditional
    assert np.array_equal(r.samples[:, known], np.repeat(clip[None, known], 2, 0)), "given frames come back as given"
    assert set(r.baselines) == set(BASELINES) and set(r.scores) == {"sample 1", "sample 2", *BASELINES}
    lin = r.scores["linear"]
    assert np.isnan(lin.per_frame_psnr[known]).all() and np.isfinite(lin.per_frame_psnr[~known]).all()
    assert lin.psnr == pytest.approx(10 * np.log10(255**2 / np.mean(
        (r.baselines["linear"][~known].astype(float) - clip[~known]) ** 2)))
    assert np.isfinite(lin.per_frame_ssim[~known]).all() and lin.centroid_px is not None
    assert r.model_psnr == pytest.approx(np.mean([r.scores["sample 1"].psnr, r.scores["sample 2"].psnr]))
    assert r.best_of_psnr == max(r.scores["sample 1"].psnr, r.scores["sample 2"].psnr)
    assert r.diversity > 0, "two ancestral samples differ"


def test_infill_without_samples_scores_the_baselines_only(sprites):
    clip, _ = sprites
    r = infill(clip, preset_known("prediction", 12), samples=0)
    assert r.samples.shape == (0, *clip.shape) and r.model_psnr is None and r.diversity is None
    assert set(r.scores) == set(BASELINES) and r.scores["last"].centroid_px is None  # no centres given


def test_infill_with_a_rectangle_and_unconditional(sprites):
    clip, _ = sprites
    region = box_mask(12, 32, [0, 4], (8, 20), (8, 20))
    r = infill(clip, np.ones(12, bool), samples=1, steps=2, region=region)
    assert np.array_equal(r.generated, region)
    assert np.array_equal(r.samples[0][~region], clip[~region]), "only the rectangle may change"
    u = infill(clip, np.zeros(12, bool), samples=1, steps=2)
    assert u.unconditional and u.generated.all() and u.samples.shape == (1, *clip.shape)


def test_infill_rejects_requests_the_user_can_fix(sprites):
    clip, _ = sprites
    with pytest.raises(ValueError, match="nothing to generate"):
        infill(clip, np.ones(12, bool), samples=0)
    with pytest.raises(ValueError, match="region mask"):
        infill(clip, np.ones(12, bool), samples=0, region=np.ones((12, 5, 5), bool))
    with pytest.raises(ValueError, match="entries"):
        infill(clip, np.ones(11, bool), samples=0)
    with pytest.raises(ValueError, match="exactly 12"):
        infill(clip[:5], np.ones(5, bool), samples=0)


def test_filmstrip_and_side_by_side():
    clip, _ = generated_clip("digits", seed=1, num_frames=3)
    gen = np.zeros((3, 32, 32), bool)
    gen[1] = True
    img = filmstrip(clip, gen, scale=2, gap=1)
    assert img.shape == (64, 3 * 64 + 2, 3)
    assert np.array_equal(img[:, :64], clip[0].repeat(2, 0).repeat(2, 1))
    assert set(np.unique(img[:, 65:129])) <= {40, 70}, "the frame to generate is hatched"
    both = side_by_side([clip, clip], gap=2)
    assert both.shape == (3, 32, 66, 3) and (both[:, :, 32:34] == 255).all()
