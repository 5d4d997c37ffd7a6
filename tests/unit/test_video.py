"""Video infill backend: generator, RaMViD mask sampler and loss, sampler invariants, baselines, metrics,
the shipped checkpoint against the baselines on fresh clips, and every kind of bad upload."""

from __future__ import annotations

import numpy as np
import pytest

from backend.video import baseline, box_mask, clip_from_upload, fit_clip, make_videos, preset_known
from backend.video.data import bouncing_clip
from backend.video.metrics import MISS_PX, centroid_error, clip_scores, diversity, psnr, ssim


# ---------------------------------------------------------------- generator
def test_make_videos_shapes_seeds_and_kinds():
    a = make_videos(3, seed=5)
    assert a.shape == (3, 12, 32, 32, 3) and a.dtype == np.uint8
    assert np.array_equal(a, make_videos(3, seed=5)), "same seed, same clips"
    assert not np.array_equal(a, make_videos(3, seed=6))
    assert np.array_equal(make_videos(2, seed=5), a[:2]), "clip i depends only on (seed, i)"
    d = make_videos(2, seed=1, kind="digits", num_frames=8)
    assert d.shape == (2, 8, 32, 32, 3) and d.std() > 5
    with pytest.raises(ValueError, match="Unknown clip kind"):
        make_videos(1, kind="mnist")


def test_sprites_move_at_constant_speed_and_bounce_inside_the_frame():
    bounced = 0
    for s in range(30):
        _, tr = bouncing_clip(np.random.default_rng(s), num_frames=16)
        c, r = tr.centers, tr.radii
        assert np.all(c >= r[None, :, None] - 1e-4) and np.all(c <= 32 - r[None, :, None] + 1e-4)
        v = np.diff(c, axis=0)  # (T-1, n, 2)
        speed = np.abs(v).max(0)  # per sprite and axis: the constant speed (a bounce only shortens a step)
        near_wall = (np.minimum(c - r[None, :, None], 32 - r[None, :, None] - c) <= speed[None] + 1e-3)
        changed = ~np.isclose(np.abs(v), speed[None], atol=1e-3)
        assert np.all(near_wall[:-1][changed] | near_wall[1:][changed]), "speed changes only at a wall"
        flips = np.sign(v[1:]) != np.sign(v[:-1])
        assert np.all((near_wall[1:-1] | near_wall[2:] | near_wall[:-2])[flips]), "direction flips only at a wall"
        bounced += int(flips.sum())
    assert bounced > 10, "bounces must happen in a sample of clips"


def test_frames_show_the_sprites_at_their_centres():
    clips, trajs = make_videos(4, seed=2, return_trajectories=True)
    for clip, tr in zip(clips, trajs):
        for t in (0, 5, 11):
            for x, y in tr.centers[t]:
                px = clip[t, int(y), int(x)]
                assert np.abs(px.astype(int) - 12).max() > 40, "a sprite centre is not background"


# ---------------------------------------------------------------- masks and loss
def test_mask_sampler_patterns():
    from backend.video.diffusion import frame_pattern, sample_masks

    rng = np.random.default_rng(0)
    m = sample_masks(300, 12, 16, rng, p_uncond=0.1, p_region=0.15)
    assert m.shape == (300, 1, 12, 16, 16) and set(np.unique(m)) <= {0.0, 1.0}
    assert (m.reshape(300, -1).min(1) == 1).mean() == pytest.approx(0.1, abs=0.05), "p_uncond of all-generate"
    assert (m.reshape(300, -1).max(1) == 1).all(), "always something to generate"
    frame_level = (m.min((1, 3, 4)) == m.max((1, 3, 4))).all(1)
    assert 0.7 < frame_level.mean() < 0.95, "most masks cover whole frames; some are rectangles"
    counts = [frame_pattern("random", 12, rng).sum() for _ in range(500)]
    assert min(counts) == 1 and max(counts) == 11, "RaMViD: 1 ... T-1 given frames"
    assert np.array_equal(sample_masks(3, 12, 32, np.random.default_rng(1), p_uncond=1.0), np.ones((3, 1, 12, 32, 32)))


def test_ramvid_mask_mix_counts_and_positions_are_uniform_with_the_unconditional_share():
    """RaMViD's masks (the default): p_uncond of clips have no given frame; the others a uniform number of
    given frames (1 ... T-1) at uniform positions; the 'tasks' flag over-represents strided patterns."""
    from scipy.stats import chisquare

    from backend.video.diffusion import sample_masks

    n, T = 6000, 12
    m = sample_masks(n, T, 2, np.random.default_rng(3), p_uncond=0.25, p_region=0.0)
    given = m[:, 0, :, 0, 0] == 0
    assert (m.min((1, 3, 4)) == m.max((1, 3, 4))).all(), "whole frames only without the region extension"
    k = given.sum(1)
    assert (k == 0).mean() == pytest.approx(0.25, abs=0.02), "unconditional share"
    cond = given[k > 0]
    counts = np.bincount(cond.sum(1), minlength=T)
    assert counts[0] == 0 and counts[T:].sum() == 0, "1 ... T-1 given frames, never all"
    assert chisquare(counts[1:T]).pvalue > 1e-3, f"number of given frames is not uniform: {counts[1:T]}"
    assert np.abs(cond.mean(0) - 0.5).max() < 0.03, "each frame given with probability E[k]/T = 1/2"
    single = np.argmax(cond[cond.sum(1) == 1], 1)
    assert chisquare(np.bincount(single, minlength=T)).pvalue > 1e-3, "a single given frame sits anywhere"
    every4 = np.zeros(T, bool)
    every4[::4] = True

    def share(mix):
        g = sample_masks(2000, T, 2, np.random.default_rng(4), p_uncond=0.0, p_region=0.0, mask_mix=mix)[:, 0, :, 0, 0]
        return ((g == 0) == every4).all(1).mean()

    assert share("ramvid") < 0.005 < 0.02 < share("tasks"), "every 4th frame given: rare in RaMViD's masks"
    with pytest.raises(ValueError, match="mask_mix"):
        sample_masks(1, T, 2, np.random.default_rng(0), mask_mix="strides")


def test_bootstrap_interval_of_paired_differences():
    from backend.video.evaluation import bootstrap_interval

    assert bootstrap_interval(np.full(50, 1.5)) == {"mean": 1.5, "ci_low": 1.5, "ci_high": 1.5}
    d = np.random.default_rng(0).normal(1.0, 2.0, 400)
    ci = bootstrap_interval(d)
    assert ci["ci_low"] < ci["mean"] < ci["ci_high"] and 0.0 < ci["ci_low"] and ci["ci_high"] < 2.0
    assert ci["ci_high"] - ci["ci_low"] == pytest.approx(2 * 1.96 * 2.0 / 20, rel=0.2), "width ~ 2 x 1.96 sd / sqrt(n)"


class _Spy:
    """A 'network' returning a learnable tensor and recording its input."""

    def __init__(self, shape):
        import torch

        self.out = torch.zeros(shape, requires_grad=True)
        self.seen = None

    def __call__(self, x, mask, t):
        self.seen = x.detach().clone()
        return self.out


def test_given_frames_enter_clean_and_carry_no_loss():
    import torch

    from backend.video.diffusion import masked_loss

    x0 = torch.rand(2, 3, 6, 8, 8) * 2 - 1
    mask = torch.ones(2, 1, 6, 8, 8)
    mask[:, :, [0, 3]] = 0  # frames 0 and 3 given
    spy = _Spy(x0.shape)
    loss = masked_loss(spy, x0, mask, t=torch.tensor([0.7, 0.9]))
    assert torch.equal(spy.seen[:, :, [0, 3]], x0[:, :, [0, 3]]), "given frames must be clean"
    assert not torch.allclose(spy.seen[:, :, 1], x0[:, :, 1]), "other frames are noised"
    loss.backward()
    g = spy.out.grad
    assert torch.all(g[:, :, [0, 3]] == 0), "no gradient from given frames"
    assert torch.all(g[:, :, [1, 2, 4, 5]].abs().sum() > 0)


def test_a_few_training_steps_lower_the_loss_on_fixed_clips():
    import torch

    from backend.core import configure_threads
    from backend.video.api import build_net, to_tensor
    from backend.video.diffusion import masked_loss, sample_masks

    configure_threads()
    torch.manual_seed(0)
    net = build_net({"channels": 8, "mult": [1, 2], "attention": False, "patch": 2})
    x0 = to_tensor(make_videos(4, seed=1, num_frames=6, res=16))
    mask = torch.as_tensor(sample_masks(4, 6, 16, np.random.default_rng(0), p_uncond=0.0, p_region=0.0))
    opt = torch.optim.Adam(net.parameters(), 3e-3)
    t, noise = torch.full((4,), 0.5), torch.randn_like(x0)
    with torch.no_grad():
        first = float(masked_loss(net, x0, mask, t, noise))
    for _ in range(25):
        loss = masked_loss(net, x0, mask, t, noise)
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert loss.item() < 0.7 * first


def test_ddim_keeps_given_pixels_and_hits_the_schedule_ends():
    import torch

    from backend.video.diffusion import alpha_sigma, ddim_sample

    a0, s0 = alpha_sigma(torch.tensor(0.0))
    a1, s1 = alpha_sigma(torch.tensor(1.0))
    assert float(a0) == 1 and float(s0) == 0 and abs(float(a1)) < 1e-6 and float(s1) == 1
    x0 = torch.rand(1, 3, 4, 8, 8) * 2 - 1
    mask = torch.zeros(1, 1, 4, 8, 8)
    mask[:, :, 1:3] = 1
    calls = []

    def net(x, m, t):
        calls.append(float(t[0]))
        return torch.zeros_like(x)

    out = ddim_sample(net, x0, mask, steps=5, resample=2, generator=torch.Generator().manual_seed(0))
    assert len(calls) == 10 and calls[0] == pytest.approx(1.0)
    assert torch.equal(out[:, :, [0, 3]], x0[:, :, [0, 3]])
    assert out.abs().max() <= 1.0


# ---------------------------------------------------------------- baselines and metrics
def test_baselines_on_a_hand_made_ramp():
    clip = np.zeros((5, 2, 2, 3), np.uint8)
    clip[0], clip[4] = 0, 200
    clip[1:4] = 99  # the truth in between is irrelevant to the baselines
    known = np.array([1, 0, 0, 0, 1], bool)
    lin = baseline(clip, known, "linear")
    assert [int(f[0, 0, 0]) for f in lin] == [0, 50, 100, 150, 200]
    near = baseline(clip, known, "nearest")
    assert [int(f[0, 0, 0]) for f in near] == [0, 0, 0, 200, 200]
    pred = baseline(clip, np.array([1, 1, 0, 0, 0], bool), "last")
    assert [int(f[0, 0, 0]) for f in pred] == [0, 99, 99, 99, 99]
    # beyond the last given frame linear interpolation copies it
    assert [int(f[0, 0, 0]) for f in baseline(clip, np.array([1, 1, 0, 0, 0], bool), "linear")] == [0, 99, 99, 99, 99]
    # region mask: only the masked pixels are filled
    region = np.zeros((5, 2, 2), bool)
    region[4, 0, 0] = True
    out = baseline(clip, np.ones(5, bool), "nearest", region)
    assert out[4, 0, 0, 0] == 99 and out[4, 1, 1, 0] == 200


def test_psnr_ssim_centroid_and_diversity_on_known_cases():
    a = np.zeros((4, 4, 3), np.uint8)
    b = a + 255
    assert psnr(a, b) == pytest.approx(0.0)
    assert psnr(a, a + 1) == pytest.approx(48.13, abs=0.01)
    assert psnr(a, a) > 90
    img = np.random.default_rng(0).integers(0, 255, (16, 16, 3)).astype(np.uint8)
    assert ssim(img, img) == pytest.approx(1.0)
    assert ssim(img, 255 - img) < 0.2
    frame = np.zeros((32, 32, 3), np.uint8) + np.array([12, 12, 20], np.uint8)
    frame[10:15, 20:25] = 250
    assert centroid_error(frame, np.array([[22.5, 12.5]])) < 0.01
    assert centroid_error(frame, np.array([[22.5, 12.5], [5.0, 5.0]])) == pytest.approx(MISS_PX / 2, abs=0.01)
    s = np.stack([np.zeros((2, 4, 4, 3), np.uint8), np.full((2, 4, 4, 3), 10, np.uint8)])
    assert diversity(s, np.ones((2, 4, 4), bool)) == pytest.approx(10.0)
    sc = clip_scores(s[1], s[0], np.array([True, False]))
    assert np.isnan(sc["per_frame_psnr"][0]) and sc["psnr"] == pytest.approx(psnr(s[1][1], s[0][1]))
    assert np.isnan(sc["per_frame_ssim"][0]) and sc["ssim"] == pytest.approx(ssim(s[1][1], s[0][1]))


def test_presets_and_box_mask():
    assert list(np.where(preset_known("upsampling", 12))[0]) == [0, 4, 8]
    assert preset_known("prediction", 12).sum() == 4 and not preset_known("unconditional", 12).any()
    m = box_mask(12, 32, [1, 2], (4, 8), (10, 20))
    assert m.sum() == 2 * 4 * 10 and m[1, 10, 4] and not m[0].any()
    with pytest.raises(ValueError, match="empty"):
        box_mask(12, 32, [1], (4, 4), (10, 20))
    with pytest.raises(ValueError, match="does not exist"):
        box_mask(12, 32, [12], (4, 8), (10, 20))


# ---------------------------------------------------------------- the shipped model
@pytest.fixture(scope="module")
def model():
    from backend.video import load_model

    return load_model("bouncing")


def test_infill_preserves_every_given_pixel_at_any_size(model):
    T = model.num_frames
    clip = make_videos(1, seed=3)[0]
    known = preset_known("upsampling", T)
    out = model.infill(clip, known, steps=3, seed=0)
    assert out.shape == clip.shape and out.dtype == np.uint8
    assert np.array_equal(out[known], clip[known])
    assert np.array_equal(model.infill(clip, known, steps=3, seed=0), out), "same seed, same sample"
    # region mask inside given frames: only its pixels may change
    region = box_mask(T, 32, [0, 4], (8, 20), (8, 20))
    out = model.infill(clip, known, steps=3, seed=1, region_mask=region)
    keep = known[:, None, None] & ~region
    assert np.array_equal(out[keep], clip[keep])
    # odd sizes and grayscale are resized to the model and back; given pixels still exact
    odd = np.random.default_rng(0).integers(0, 255, (T, 45, 37, 3)).astype(np.uint8)
    out = model.infill(odd, known, steps=2, seed=0)
    assert out.shape == odd.shape and np.array_equal(out[known], odd[known])
    gray = odd[..., 0]
    assert model.infill(gray, known, steps=2, seed=0).shape == (T, 45, 37, 3)
    samples = model.infill_samples(clip, preset_known("prediction", T), 2, steps=3, seed=0, eta=1.0)
    assert samples.shape == (2, *clip.shape) and not np.array_equal(samples[0], samples[1])
    assert model.generate(1, steps=2, seed=0).shape == (1, T, 32, 32, 3)


def test_infill_rejects_wrong_input_with_clear_messages(model):
    T = model.num_frames
    clip = make_videos(1, seed=3)[0]
    with pytest.raises(ValueError, match="exactly 12"):
        model.infill(clip[:5], np.ones(5, bool), steps=2)
    with pytest.raises(ValueError, match="No frame or pixel is given"):
        model.infill(clip, np.zeros(T, bool), steps=2)
    with pytest.raises(ValueError, match="nothing to generate"):
        model.infill(clip, np.ones(T, bool), steps=2)
    with pytest.raises(ValueError, match="entries"):
        model.infill(clip, np.ones(T - 1, bool), steps=2)
    with pytest.raises(ValueError, match="region mask"):
        model.infill(clip, np.ones(T, bool), steps=2, region_mask=np.ones((T, 5, 5), bool))
    with pytest.raises(ValueError, match="Steps"):
        model.infill(clip, preset_known("prediction", T), steps=0)
    with pytest.raises(ValueError, match="Unknown video model"):
        from backend.video import load_model

        load_model("kinetics")


@pytest.mark.slow
def test_shipped_model_beats_the_copy_baselines_on_fresh_clips(model):
    """12 clips from seeds used neither in training nor in the card's evaluation, DDIM-25.

    Measured claims (see the card): with the first 4 frames given it beats last-frame copy on the next 4;
    with every 4th frame given it beats nearest-frame copy and linear interpolation on PSNR (the card's
    interval comes from 256 test clips at DDIM-4; these 12 clips are a smaller check at DDIM-25) and on
    the objects' centroid error.
    """
    from backend.video.metrics import baseline as base

    T, R = model.num_frames, model.resolution
    clips, trajs = make_videos(12, seed=20_000_000, return_trajectories=True)

    def scores(task, scored):
        known = preset_known(task, T)
        masks = np.repeat(~known[None, :, None, None], len(clips), 0) * np.ones((1, T, R, R), bool)
        preds = model.batch_infill(clips, masks, steps=25, seed=0)
        gen = np.repeat(scored[:, None, None], R, 1).repeat(R, 2)
        ours = np.mean([psnr(p, c, gen) for p, c in zip(preds, clips)])
        return ours, {b: np.mean([psnr(base(c, known, b), c, gen) for c in clips]) for b in ("nearest", "linear", "last")}, preds

    t = np.arange(T)
    ours, b, _ = scores("prediction", (t >= 4) & (t < 8))
    assert ours > b["last"], (ours, b)
    ours, b, preds = scores("upsampling", t % 4 != 0)
    assert ours > b["nearest"] + 1.0, (ours, b)
    assert ours > b["linear"] + 0.5, (ours, b)
    known = preset_known("upsampling", T)
    err = {who: np.mean([clip_scores(p, c, known, tr.centers, with_ssim=False)["centroid_px"]
                         for p, c, tr in zip(ps, clips, trajs)])
           for who, ps in (("model", preds), ("linear", [base(c, known, "linear") for c in clips]),
                           ("nearest", [base(c, known, "nearest") for c in clips]))}
    assert err["model"] < min(err["linear"], err["nearest"]), err


# ---------------------------------------------------------------- uploads
def _avi(frames: np.ndarray, fps: float = 10.0, color: bool = True) -> bytes:
    import os
    import tempfile

    import cv2

    with tempfile.NamedTemporaryFile(suffix=".avi", delete=False) as f:
        path = f.name
    h, w = frames.shape[1:3]
    vw = cv2.VideoWriter(path, cv2.VideoWriter_fourcc(*"MJPG"), fps, (w, h), isColor=color)
    for fr in frames:
        vw.write(fr if not color else cv2.cvtColor(fr, cv2.COLOR_RGB2BGR))
    vw.release()
    data = open(path, "rb").read()
    os.unlink(path)
    return data


def test_uploads_good_and_bad():
    from backend.core.media import gif_bytes, webm_bytes

    clip = make_videos(1, seed=4)[0]
    got, note = clip_from_upload(gif_bytes(clip, scale=1), num_frames=12, resolution=32)
    assert got.shape == (12, 32, 32, 3) and note == ""
    assert np.abs(got.astype(int) - clip).mean() < 12  # GIF palette quantisation only
    wb = webm_bytes(clip, scale=2)
    assert clip_from_upload(wb)[0].shape == (12, 32, 32, 3)
    with pytest.raises(ValueError, match="could not be opened|No frames"):
        clip_from_upload(b"this is a text file, not a video" * 10)
    with pytest.raises(ValueError, match="empty"):
        clip_from_upload(b"")
    with pytest.raises(ValueError, match="could not be opened|No frames|readable frame"):
        clip_from_upload(wb[: len(wb) // 6])  # truncated
    with pytest.raises(ValueError, match="1 readable frame"):
        clip_from_upload(gif_bytes(clip[:1], scale=1))
    # odd size, grayscale, short: cropped, converted and padded, with a note
    odd = np.random.default_rng(0).integers(0, 255, (5, 46, 62), dtype=np.uint8)
    got, note = clip_from_upload(_avi(odd, color=False))
    assert got.shape == (12, 32, 32, 3) and "centre-cropped 62×46" in note and "held" in note
    # a 4K video is downscaled while reading
    big = np.zeros((2, 2160, 3840, 3), np.uint8)
    big[:, 1000:1100, 1900:2000] = 255
    got, note = clip_from_upload(_avi(big, fps=1))
    assert got.shape == (12, 32, 32, 3) and got.max() > 100
    # a 10-minute video: only the chosen range is decoded
    long_clip = np.repeat(make_videos(1, seed=5, num_frames=20)[0], 30, 0)  # 600 frames at 1 fps
    got, _ = clip_from_upload(_avi(long_clip, fps=1), start=590)
    assert got.shape == (12, 32, 32, 3)
    with pytest.raises(ValueError, match="earlier start|readable frame|No frames"):
        clip_from_upload(_avi(long_clip, fps=1), start=599)
    with pytest.raises(ValueError, match="0 or later"):
        clip_from_upload(gif_bytes(clip, scale=1), start=-1)


def test_fit_clip_validates_shapes():
    with pytest.raises(ValueError, match="frames"):
        fit_clip(np.zeros((0, 4, 4, 3), np.uint8), 12, 32)
    got, note = fit_clip(np.zeros((12, 64, 64, 3), np.uint8), 12, 32)
    assert got.shape == (12, 32, 32, 3) and note == "resized to 32×32"
