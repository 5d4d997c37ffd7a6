"""The `video-bouncing` recipe on the shared loop: its phases, its batches, a 20-step smoke run that the public
loader reads back, and the shipped card and checkpoint as the re-evaluation wrote them."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from backend.core import registry
from backend.core.training import Context, train
from backend.video import load_model, make_videos
from backend.video.train import RECIPES, VideoBouncing, train_clip_seed


def test_recipe_is_registered_with_four_phases_over_its_steps():
    assert RECIPES == {"video-bouncing": VideoBouncing}
    phases = VideoBouncing().phases(20000)
    assert [p.steps for p in phases] == [4000, 4000, 4000, 8000] and all(p.grad_clip == 1.0 for p in phases)
    lr = [p.lr_at(i) for p in phases for i in range(p.steps)]
    assert lr[0] == pytest.approx(1e-3 / 200) and lr[199] == pytest.approx(1e-3) and lr[3999] == pytest.approx(1e-3)
    for start in (8000, 12000):  # each decay restarts a little lower and ends at 0.1x
        assert lr[start - 1] == pytest.approx(1e-4, rel=0.01) and 6.9e-4 < lr[start] < 8.3e-4
    assert lr[-1] == pytest.approx(1e-4, rel=0.01) and sum(p.steps for p in VideoBouncing().phases(20)) == 20


def test_a_fine_tune_starts_from_a_checkpoint_at_a_constant_rate(tmp_path):
    smoke = VideoBouncing(**VideoBouncing.smoke)
    assert smoke.config["mask_mix"] == "ramvid" and smoke.config["p_uncond"] == 0.25, "RaMViD's masks by default"
    start = smoke.build(None)
    torch.save({"ema": start.state_dict()}, tmp_path / "start.pt")
    recipe = VideoBouncing(**VideoBouncing.smoke, init_from=str(tmp_path / "start.pt"))
    net = recipe.build(None)
    assert all(torch.equal(a, b) for a, b in zip(net.state_dict().values(), start.state_dict().values()))
    (phase,) = recipe.phases(300)
    assert phase.steps == 300 and phase.lr_at(49) == phase.lr_at(299) == pytest.approx(1e-4)
    assert not recipe.validate_every and VideoBouncing(init_from="x", val_every=400).validate_every == 400
    assert "mask_mix=tasks" in recipe.command(300, 1) and "--steps 300 --seed 1 --set init_from=" in recipe.command(300, 1)


def test_batches_are_fresh_clips_with_masks_per_rank():
    recipe = VideoBouncing(**VideoBouncing.smoke)
    phase = recipe.phases(20)[0]

    def draw(rank):
        ctx = Context(5, phase, 0, 5, torch.device("cpu"), np.random.default_rng([0, rank]), None, 0, rank, 2)
        return recipe.batch(ctx)

    (x0, mask), (x1, _) = draw(0), draw(1)
    assert x0.shape == (2, 3, 12, 32, 32) and mask.shape == (2, 1, 12, 32, 32)
    assert x0.min() >= -1 and x0.max() <= 1 and set(mask.unique().tolist()) <= {0.0, 1.0}
    assert not torch.equal(x0, x1), "each rank draws its own clips"
    assert train_clip_seed(0, 5) == 2**31 + 5 and train_clip_seed(0, 5, 1, 2) == 2**31 + 11


def test_the_paper_setting_has_no_mask_channel_and_refuses_rectangles():
    with pytest.raises(ValueError, match="mask channel"):
        VideoBouncing(mask_channel=False).build(None)
    net = VideoBouncing(**{**VideoBouncing.smoke, "mask_channel": False, "p_region": 0.0}).build(None)
    assert net.stem.spatial.in_channels == 3 * 4, "3 colour channels, 2x2 pixels folded in, no mask"


@pytest.mark.slow
def test_smoke_run_writes_a_checkpoint_the_loader_reads(tmp_path, monkeypatch):
    monkeypatch.setattr(registry, "RUNS_DIR", tmp_path / "runs")
    monkeypatch.setattr(registry, "CHECKPOINT_DIR", tmp_path / "ckpt")
    card = train(VideoBouncing(**VideoBouncing.smoke), steps=20, device="cpu", seed=0)
    assert sorted(p.name for p in (tmp_path / "ckpt").iterdir()) == ["video-bouncing.json", "video-bouncing.pt"]
    assert card["steps"] == 20 and {"interp4_psnr", "predict4_best_of_2_psnr"} <= set(card["metrics"])
    model = load_model("bouncing", device="cpu", directory=tmp_path / "ckpt")
    assert model.card["steps"] == 20 and model.evaluation["per_frame_psnr"]["interp4"]["model"][1] is not None
    clip = make_videos(1, seed=0)[0]
    known = np.arange(12) % 4 == 0
    assert np.array_equal(model.infill(clip, known, steps=2)[known], clip[known])


def test_shipped_card_and_payload():
    from backend.core import read_card

    card = read_card("video-bouncing")
    h, m, b = card["headline"], card["metrics"], card["baselines"]
    assert card["command"].startswith("python -m backend.train video-bouncing --steps 20000 --seed 0 --set mask_mix=tasks")
    assert card["steps"] == 80 and card["config"]["mask_mix"] == "ramvid" and card["config"]["init_from"]
    assert card["config"]["n_eval"] >= 256 and "seed 40000000, evaluated once" in card["readout"]
    assert h["metric"] == "interp4_psnr" and h["value"] == m["interp4_psnr"] == pytest.approx(19.03, abs=0.05)
    gain = m["interp4_gain_vs_linear"]
    assert gain["ci_low"] < gain["mean"] < gain["ci_high"] and gain["ci_low"] > 1.0, "every 4th given: >= linear + 1 dB"
    assert m["interp4_psnr"] >= b["linear"]["interp4_psnr"] + 1.0 and m["predict4_gain_vs_last"]["ci_low"] > 0
    assert h["baseline"] == b["linear"]["interp4_psnr"] and set(b) == {"nearest", "linear", "last"}
    assert all(t["met"] for t in card["targets"]), card["targets"]
    curves = load_model("bouncing").evaluation["per_frame_psnr"]
    assert set(curves) == {"interp4", "predict4", "ends2"} and curves["interp4"]["model"][0] is None
