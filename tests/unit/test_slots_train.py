"""Unit tests of the Slots recipes (backend.slots.train) and their losses (backend.slots.losses): the phases as data,
a smoke run through the core loop, growth and resume, the distillation teacher, and the textured warm start."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from backend.core import registry
from backend.core.progress import Cancelled
from backend.core.training import train
from backend.slots import build_model
from backend.slots.data import TRAIN_SEED_BASE, make_scenes
from backend.slots.losses import distill_loss, mask_entropy
from backend.slots.train import BASE_COMMAND, RECIPES, SMOKE, VARIED_SEED, SlotsSprites, SlotsTextured, split_steps


@pytest.fixture
def tmp_dirs(tmp_path, monkeypatch):
    monkeypatch.setattr(registry, "CHECKPOINT_DIR", tmp_path / "ckpt")
    monkeypatch.setattr(registry, "RUNS_DIR", tmp_path / "runs")
    import backend.core.training as tr

    monkeypatch.setattr(tr, "CHECKPOINT_DIR", tmp_path / "ckpt", raising=False)
    return tmp_path


def test_split_steps_keeps_the_default_path_and_scales_down():
    lengths = [11_000, 8000, 20_000, 4000, 3000, 1500, 3000]
    assert split_steps(50_500, lengths) == lengths
    small = split_steps(20, lengths)
    assert sum(small) == 20 and min(small) >= 1
    assert sum(split_steps(3, lengths)) == 3


def test_sprites_phases_are_the_shipped_path():
    phases = SlotsSprites().phases(50_500)
    assert [p.name for p in phases] == ["base", "grow", "scale", "sharpen", "distill-1", "distill-2", "distill-3"]
    starts = np.cumsum([0] + [p.steps for p in phases])[:-1].tolist()
    assert starts == [0, 11_000, 19_000, 39_000, 43_000, 46_000, 47_500]
    assert [p.batch for p in phases] == [32, 32, 128, 32, 32, 32, 32]
    assert [p.options["pool"] for p in phases] == [5000, 5000, 50_000, 50_000, 6000, 6000, 6000]
    assert phases[3].weights == {"entropy": 0.005} and phases[4].weights == {"distill": 0.02}
    assert not phases[0].options["grown"] and all(p.options["grown"] for p in phases[1:])
    assert phases[4].options["teacher"] == {"passes": 8, "iters": 4, "merge": None}
    assert all(p.grad_clip == 1.0 and p.final_lr_frac == 0.05 for p in phases)
    textured = SlotsTextured().phases(7500)
    assert [p.steps for p in textured] == [4000, 1500, 2000] and textured[2].options["teacher"]["merge"] == 0.7


def test_mask_entropy_values_and_gradient():
    uniform = torch.full((2, 5, 4, 4), 0.2)
    assert float(mask_entropy(uniform)) == pytest.approx(math.log(5), rel=1e-5)
    hard = torch.zeros(2, 5, 4, 4)
    hard[:, 1] = 1
    assert float(mask_entropy(hard)) == pytest.approx(0.0, abs=1e-5)
    logits = torch.randn(1, 5, 4, 4, requires_grad=True)
    mask_entropy(logits.softmax(1)).backward()
    with torch.no_grad():
        step = logits - 0.5 * logits.grad  # descending the entropy makes the masks harder
        assert float(mask_entropy(step.softmax(1))) < float(mask_entropy(logits.softmax(1)))


def test_distill_loss_matches_slots_before_comparing():
    """Zero for the teacher's masks in another slot order, positive for other masks, with a gradient."""
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(3, 5, 6, 6, generator=g, requires_grad=True)
    masks = logits.softmax(1)
    shuffled = masks.detach()[:, [3, 1, 4, 0, 2]]
    assert float(distill_loss(masks, shuffled).detach()) == pytest.approx(0.0, abs=1e-6)
    other = torch.randn(3, 5, 6, 6, generator=g).softmax(1)
    loss = distill_loss(masks, other)
    assert float(loss.detach()) > 0.01
    loss.backward()
    assert logits.grad is not None and logits.grad.abs().sum() > 0


@pytest.mark.slow
def test_twenty_step_smoke_run_grows_distills_and_writes_a_loadable_checkpoint(tmp_dirs):
    recipe = SlotsSprites(**SMOKE)
    card = train(recipe, steps=20, device="cpu", seed=0)
    assert card["steps"] == 20 and {"fg_ari", "miou", "fg_ari_posterior"} <= set(card["metrics"])
    assert set(card["baselines"]) == {"kmeans", "kmeans_shifted", "coverage_majority", "coverage_objects_first"}
    # the paper's readout and the shifted test set beside the shipped readout, each with a 95 % interval
    for key in ("paper_readout", "shifted", "shifted_paper_readout", "ci95"):
        m = card["metrics"][key]
        assert m["fg_ari_lo"] <= m.get("fg_ari", m["fg_ari_lo"]) <= m["fg_ari_hi"]
    assert {t["metric"] for t in card["targets"]} >= {"shifted_fg_ari", "shifted_lead_over_kmeans"}
    assert recipe.teacher_state is not None  # the distillation rounds had a teacher
    payload, _ = registry.load_checkpoint("slots-sprites", directory=tmp_dirs / "ckpt")
    assert payload["config"]["dec_refine"] == 1  # the grown architecture ships
    assert payload["training"]["snapshots"][-1]["step"] == 20
    readout = payload["evaluation"]["readout"]
    model = build_model(payload, "cpu")
    assert (model.iters, model.merge) == (readout["iters"], readout["merge"])
    assert len(payload["evaluation"]["grid"]) == 3 * 5


@pytest.mark.slow
def test_a_run_cancelled_after_the_growth_resumes_in_the_grown_architecture(tmp_dirs):
    def stop_at_8(step, total, message):
        return step >= 8

    with pytest.raises(Cancelled):
        train(SlotsSprites(**SMOKE), steps=20, device="cpu", seed=0, progress=stop_at_8)
    state = torch.load(tmp_dirs / "runs" / "slots-sprites" / "state.pt", weights_only=False)
    assert state["step"] == 8 and any(k.startswith("refine.0.") for k in state["model"])
    card = train(SlotsSprites(**SMOKE), steps=20, device="cpu", seed=0, resume=True)
    assert card["steps"] == 20


@pytest.mark.slow
def test_textured_starts_from_the_sprites_checkpoint_or_says_why_not(tmp_dirs):
    train(SlotsSprites(**{**SMOKE, "model": {**SMOKE["model"], "dec_refine": 1}}), steps=2, device="cpu", seed=0)
    sprites, _ = registry.load_checkpoint("slots-sprites", directory=tmp_dirs / "ckpt")
    recipe = SlotsTextured(**{**SMOKE, "model": {**SMOKE["model"], "dec_refine": 1}, "init_from": "slots-sprites"})
    seen = {}
    original = recipe.on_phase_start

    def spy(model, ctx):
        out = original(model, ctx)
        seen.setdefault(ctx.phase.name, {k: v.clone() for k, v in model.state_dict().items()})
        return out

    recipe.on_phase_start = spy
    train(recipe, steps=3, device="cpu", seed=0, save=False)
    key = "slot_attention.to_k.weight"
    assert torch.equal(seen["base"][key], sprites["state_dict"][key])
    bad = SlotsTextured(**{**SMOKE, "model": {**SMOKE["model"], "slot_dim": 8}, "init_from": "slots-sprites"})
    with pytest.raises(ValueError, match="another model config"):
        train(bad, steps=2, device="cpu", seed=0, save=False)


def test_recipes_are_registered():
    assert set(RECIPES) == {"slots-sprites", "slots-textured"}


def test_finetune_is_one_phase_on_a_half_varied_pool_and_its_command_names_the_flags(tmp_dirs):
    flags = {"finetune": True, "init_from": "slots-sprites", "train_dist": "mix", "val_dists": ["standard", "shifted"]}
    recipe = SlotsSprites(**{**flags, "finetune_pool": 6})
    [phase] = recipe.phases(300)
    assert phase.name == "vary" and phase.steps == 300 and phase.options["pool"] == 6
    assert phase.options["grown"] and phase.weights == {"entropy": 0.005} and phase.options["validate_every"] == 150
    pool = recipe._images(6, 0)
    standard = make_scenes(3, seed=TRAIN_SEED_BASE, res=32)[0]
    varied = make_scenes(3, seed=VARIED_SEED, res=32, dist="varied")[0]
    assert np.array_equal(pool, np.concatenate([standard, varied]))
    cmd = recipe.command(300, 0)
    assert cmd.startswith(BASE_COMMAND) and "--steps 300" in cmd and "--set \"train_dist='mix'\"" in cmd
    resumed = recipe.command(110, 0)  # the shipped fine-tune: a 260-step launch stopped after step 100, resumed
    assert "--steps 260 " in resumed and resumed.endswith("--resume") and "--steps 110 " in resumed
    assert SlotsSprites().command(50_500, 0) == "python -m backend.train slots-sprites --steps 50500 --seed 0"
    assert len(SlotsSprites().phases(50_500)) == 7  # without the flag, the full path
