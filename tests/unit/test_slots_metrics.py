"""Unit tests of backend.slots.metrics (FG-ARI, mIoU, k-means), the readouts (duplicate-slot merging, the posterior)
and the validation readout choice."""

from __future__ import annotations

import numpy as np
import pytest

from backend.slots import (
    Segmentation,
    fg_ari,
    kmeans_segment,
    make_scenes,
    merge_duplicate_slots,
    miou,
    miou_per_image,
    posterior_masks,
)


def _onehot(pred, k):
    return np.moveaxis(np.eye(k)[pred], -1, 1)


def test_fg_ari_matches_sklearn_on_foreground():
    from sklearn.metrics import adjusted_rand_score

    rng = np.random.default_rng(0)
    labels = rng.integers(0, 4, (5, 16, 16))
    pred = rng.integers(0, 5, (5, 16, 16))
    # make predictions correlate with truth in part of the images
    pred[:, :8] = labels[:, :8]
    ref = np.mean([adjusted_rand_score(t[t > 0], p[t > 0]) for t, p in zip(labels, pred)])
    assert fg_ari(labels, _onehot(pred, 5)) == pytest.approx(ref, abs=1e-9)


def test_fg_ari_hand_cases():
    t = np.zeros((1, 4, 4), int)
    t[0, :2, :2] = 1
    t[0, 2:, 2:] = 2
    perfect = t.copy()
    permuted = np.where(t == 1, 3, np.where(t == 2, 0, 1))  # different ids, same grouping of foreground
    merged = np.where(t > 0, 1, 0)  # both objects in one slot
    assert fg_ari(t, _onehot(perfect, 4)) == pytest.approx(1.0)
    assert fg_ari(t, _onehot(permuted, 4)) == pytest.approx(1.0)
    assert fg_ari(t, _onehot(merged, 4)) == pytest.approx(0.0)
    # background pixels do not count: background split anyhow, still perfect
    noisy_bg = perfect.copy()
    noisy_bg[0, 0, 3] = 3
    noisy_bg[0, 3, 0] = 1
    assert fg_ari(t, _onehot(noisy_bg, 4)) == pytest.approx(1.0)


def test_miou_hand_cases():
    t = np.zeros((1, 4, 4), int)
    t[0, :2, :] = 1  # object 1: top half (8 px); background: bottom half (8 px)
    assert miou(t, _onehot(t, 3)) == pytest.approx(1.0)
    # prediction splits the object into two slots of 4 px: matched IoU 0.5 (obj) + 1 (bg); 3 segments
    p = t.copy()
    p[0, :2, 2:] = 2
    assert miou_per_image(t, _onehot(p, 3))[0] == pytest.approx((0.5 + 1.0) / 3)
    # swapping slot ids changes nothing
    assert miou(t, _onehot(1 - t, 3)) == pytest.approx(1.0)


def test_kmeans_baseline_separates_flat_objects():
    imgs, labels, _ = make_scenes(6, seed=3, variant="sprites")
    km = kmeans_segment(imgs, k=5)
    assert km.shape == labels.shape
    assert fg_ari(labels, km) > 0.5


def test_merge_duplicate_slots_on_hand_made_masks():
    # slots 0 and 3 share the background half and half, slot 1 and 2 hold one object each, slot 4 is empty
    masks = np.zeros((1, 5, 4, 4), np.float32)
    masks[0, 1, 0, 0] = masks[0, 2, 3, 3] = 1
    bg = np.ones((4, 4), bool)
    bg[0, 0] = bg[3, 3] = False
    masks[0, 0][bg] = masks[0, 3][bg] = 0.5
    masks[0, 4] = 0
    merged, into = merge_duplicate_slots(masks, 0.9)
    assert into.tolist() == [[0, 1, 2, 0, 4]]
    assert np.allclose(merged[0, 0][bg], 1) and np.allclose(merged[0, 3], 0)
    assert np.allclose(merged[0, 1:3], masks[0, 1:3]) and np.allclose(merged.sum(1), masks.sum(1))
    # near duplicates chain transitively to the lowest-numbered slot; a strict threshold keeps them apart
    m = np.stack([np.linspace(1, 2, 16), np.linspace(1, 2.2, 16), np.linspace(1, 2.4, 16)]).reshape(1, 3, 4, 4)
    m = (m / m.sum(1, keepdims=True)).astype(np.float32)
    assert merge_duplicate_slots(m, 0.99)[1].tolist() == [[0, 0, 0]]
    assert merge_duplicate_slots(m, 1.0)[1].tolist() == [[0, 1, 2]]
    # an edge pixel the object wins (0.4) against two background duplicates (0.3 each) stays the object's: the
    # merged mask is the strongest member's, renormalised, not the duplicates' sum (0.6) that would outvote it
    e = np.zeros((1, 3, 4, 4), np.float32)
    e[0, 1:] = 0.5
    e[0, 0, :2, :2] = 1
    e[0, 1:, :2, :2] = 0
    e[0, :, 3, 3] = [0.4, 0.3, 0.3]
    merged, into = merge_duplicate_slots(e, 0.9)
    assert into.tolist() == [[0, 1, 1]]
    assert merged[0].argmax(0)[3, 3] == 0 and np.allclose(merged[0, :, 3, 3], [4 / 7, 3 / 7, 0])
    assert np.allclose(merged.sum(1), 1) and np.allclose(merged[0, 2], 0)
    assert np.array_equal(merged[0].argmax(0), into[0][e[0].argmax(0)])


def test_posterior_readout_hand_case():
    """Two slots with equal alpha masks: each pixel goes to the slot whose colour it has; sums to 1; shape checks."""
    img = np.zeros((1, 2, 2, 3), np.uint8)
    img[0, :, 0] = (255, 0, 0)  # left column red, right column black
    rgbs = np.zeros((1, 2, 2, 2, 3), np.uint8)
    rgbs[0, 0] = (255, 0, 0)  # slot 0 draws red everywhere, slot 1 black everywhere
    masks = np.full((1, 2, 2, 2), 0.5, np.float32)
    recon = (img // 2).astype(np.uint8)  # a blurred reconstruction: non-zero error, so a finite variance
    seg = Segmentation(masks=masks, recon=recon, slot_recons=rgbs, slots=np.zeros((1, 2, 4), np.float32),
                       attn=masks, slot_rgbs=rgbs)
    post = posterior_masks(img, seg)
    assert post.shape == (1, 2, 2, 2) and np.allclose(post.sum(1), 1, atol=1e-6)
    assert (post[0, 0, :, 0] > 0.99).all() and (post[0, 1, :, 1] > 0.99).all()
    # a strong prior is not overturned by a colour both slots explain equally well
    masks2 = masks.copy()
    masks2[0, 0], masks2[0, 1] = 0.9, 0.1
    rgbs2 = np.zeros_like(rgbs)
    seg2 = Segmentation(masks=masks2, recon=recon, slot_recons=rgbs2, slots=seg.slots, attn=masks2, slot_rgbs=rgbs2)
    assert np.allclose(posterior_masks(img, seg2)[0, 0], 0.9, atol=1e-5)
    with pytest.raises(ValueError, match="match"):
        posterior_masks(np.zeros((1, 3, 3, 3), np.uint8), seg)


def test_best_readout_takes_the_best_sum_and_breaks_ties_towards_the_simpler_readout():
    from backend.slots.evaluate import best_readout

    grid = {(3, None): {"fg_ari": 0.8, "miou": 0.6}, (3, 0.9): {"fg_ari": 0.8, "miou": 0.7},
            (4, None): {"fg_ari": 0.85, "miou": 0.65}, (4, 0.9): {"fg_ari": 0.9, "miou": 0.6}}
    assert best_readout(grid) == (3, 0.9)  # 1.5, tied with (4, None) and (4, 0.9): the fewest iterations win
    grid[(5, 0.7)] = {"fg_ari": 0.9, "miou": 0.7}
    assert best_readout(grid) == (5, 0.7)
