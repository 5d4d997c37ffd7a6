"""Unit tests of the held-out evaluation's pieces: bootstrap intervals and the paper/shipped readout switch."""

from __future__ import annotations

import numpy as np
import pytest

from backend.slots import make_scenes
from backend.slots.evaluate import readouts_with_intervals, with_interval
from backend.slots.inference import SlotModel
from backend.slots.metrics import bootstrap_ci


def test_bootstrap_interval_brackets_the_mean_and_shrinks_with_more_scenes():
    rng = np.random.default_rng(0)
    few, many = rng.random(20), rng.random(2000)
    lo, hi = bootstrap_ci(few)
    assert lo < few.mean() < hi
    lo2, hi2 = bootstrap_ci(many)
    assert lo2 < many.mean() < hi2 and (hi2 - lo2) < (hi - lo) / 4
    assert bootstrap_ci(few, seed=3) == bootstrap_ci(few, seed=3)  # seeded
    assert bootstrap_ci(np.full(50, 0.7)) == pytest.approx((0.7, 0.7))
    with pytest.raises(ValueError, match="bootstrap"):
        bootstrap_ci([])


def test_with_interval_on_perfect_masks_is_one_with_a_zero_width_interval():
    _, labels, _ = make_scenes(5, seed=1, res=16)
    masks = np.stack([(labels == k) for k in range(5)], 1).astype(np.float32)
    out = with_interval(labels, masks)
    for key in ("fg_ari", "miou"):
        assert out[key] == out[f"{key}_lo"] == out[f"{key}_hi"] == pytest.approx(1.0)


@pytest.fixture(scope="module")
def tiny_net():
    import torch

    from backend.slots.model import DEFAULT_CONFIG, SlotAttentionAE
    from backend.slots.train import TINY_MODEL

    torch.manual_seed(0)
    return SlotAttentionAE({**DEFAULT_CONFIG, **TINY_MODEL, "num_slots": 5}).eval()


def test_paper_readout_is_training_iterations_without_merging_and_the_shipped_one_follows_its_settings(tiny_net):
    imgs, labels, _ = make_scenes(6, seed=2, res=16)
    train_iters = int(tiny_net.config["iters"])
    out = readouts_with_intervals(tiny_net, "cpu", "sprites", imgs, labels, train_iters + 2, 0.5)
    plain = SlotModel(tiny_net, "cpu").segment(imgs, seed=0, merge=False).masks
    assert out["paper"] == with_interval(labels, plain)
    shipped = SlotModel(tiny_net, "cpu", iters=train_iters + 2, merge=0.5).segment(imgs, seed=0).masks
    assert out["shipped"] == with_interval(labels, shipped)
    assert not np.array_equal(shipped, plain)  # the switch changes the masks
    # with the training's iterations and no merging, the shipped readout is the paper's
    same = readouts_with_intervals(tiny_net, "cpu", "sprites", imgs, labels, train_iters, None)
    assert same["shipped"] == same["paper"]
    assert set(out["kmeans"]) == {"fg_ari", "fg_ari_lo", "fg_ari_hi", "miou", "miou_lo", "miou_hi"}
