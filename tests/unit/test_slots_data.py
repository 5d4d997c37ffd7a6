"""Unit tests of backend.slots.data (the scene generator, true pixel coverage) and backend.slots.pool."""

from __future__ import annotations

import numpy as np
import pytest

from backend.slots import EVAL_SEED, TRAIN_SEED_BASE, coverage_masks, fg_ari, make_scenes, miou, scene_coverage
from backend.slots.data import DISTS, MAX_OBJECTS, SUPER, TEST_SEED, shape_mask
from backend.slots.pool import render_parallel, training_pool


def test_scenes_shapes_types_and_ranges():
    imgs, labels, objects = make_scenes(12, seed=5, variant="sprites")
    assert imgs.shape == (12, 32, 32, 3) and imgs.dtype == np.uint8
    assert labels.shape == (12, 32, 32) and np.issubdtype(labels.dtype, np.integer)
    assert len(objects) == 12
    for lab, objs in zip(labels, objects):
        assert 2 <= len(objs) <= 4
        assert set(np.unique(lab)) <= set(range(len(objs) + 1))
        for o in objs:
            assert 0.2 <= o["size"] <= 0.4 and 0 <= o["x"] <= 1 and 0 <= o["y"] <= 1
            assert o["shape"] in ("square", "circle", "triangle", "heart") and o["visible"]


def test_scenes_reproducible_and_seed_dependent():
    a = make_scenes(4, seed=11, variant="textured")
    b = make_scenes(4, seed=11, variant="textured")
    c = make_scenes(4, seed=12, variant="textured")
    assert np.array_equal(a[0], b[0]) and np.array_equal(a[1], b[1]) and a[2] == b[2]
    assert not np.array_equal(a[0], c[0])
    # scene i depends only on (seed, i): a window of a longer draw is the same scenes
    d = make_scenes(2, seed=11, variant="textured", start=2)
    assert np.array_equal(a[0][2:], d[0])


def test_label_map_is_exact_z_order_paint():
    """Re-paint every object's mask in order and sample at the label grid: must equal the labels."""
    imgs, labels, objects = make_scenes(6, seed=21, variant="sprites")
    hr = 32 * SUPER
    for lab, objs in zip(labels, objects):
        ref = np.zeros((hr, hr), np.int64)
        for i, o in enumerate(objs, 1):
            ref[shape_mask(o["shape"], o["x"], o["y"], o["size"], hr)] = i
        assert np.array_equal(ref[SUPER // 2::SUPER, SUPER // 2::SUPER], lab)


def test_pixels_fully_inside_an_object_have_its_colour():
    """Anti-aliasing only blends at edges: a pixel whose 4x4 sub-pixels all belong to object i is its colour."""
    imgs, labels, objects = make_scenes(6, seed=8, variant="sprites")
    hr = 32 * SUPER
    for img, lab, objs in zip(imgs, labels, objects):
        ref = np.zeros((hr, hr), np.int64)
        for i, o in enumerate(objs, 1):
            ref[shape_mask(o["shape"], o["x"], o["y"], o["size"], hr)] = i
        blocks = ref.reshape(32, SUPER, 32, SUPER).transpose(0, 2, 1, 3).reshape(32, 32, -1)
        pure = (blocks == blocks[..., :1]).all(-1)
        for i, o in enumerate(objs, 1):
            sel = pure & (blocks[..., 0] == i)
            assert sel.any() and (lab[sel] == i).all()
            assert np.abs(img[sel].astype(float) - np.array(o["rgb"]) * 255).max() <= 1.0


def test_coverage_masks_majority_and_objects_first_by_hand():
    """Plain: the coverage itself. Objects first: a pixel any object touches loses its background share; the
    objects' shares are renormalised; pixels no object touches stay background."""
    cov = np.zeros((1, 3, 1, 5), np.float32)
    cov[0, :, 0, 0] = [0.75, 0.25, 0.0]  # mostly background, one object touches it
    cov[0, :, 0, 1] = [0.5, 0.125, 0.375]  # two objects touch it
    cov[0, :, 0, 2] = [1.0, 0.0, 0.0]  # background only
    cov[0, :, 0, 3] = [0.0, 1.0, 0.0]
    cov[0, :, 0, 4] = [0.0, 0.0, 1.0]
    assert np.array_equal(coverage_masks(cov), cov)
    of = coverage_masks(cov, objects_first=True)
    assert np.allclose(of[0, :, 0, 0], [0, 1, 0]) and np.allclose(of[0, :, 0, 1], [0, 0.25, 0.75])
    assert np.allclose(of[0, :, 0, 2], [1, 0, 0]) and np.allclose(of.sum(1), 1)
    # pixel 1's label sample fell on object 2, pixel 0's on the background: by majority pixel 1 goes to the
    # background and FG-ARI drops; objects first gets it right and loses nothing on pixel 0 (background-labelled,
    # not scored by FG-ARI), but mIoU, background included, pays for pixel 0
    labels = np.array([[[0, 2, 0, 1, 2]]])
    assert fg_ari(labels, of) == pytest.approx(1.0) and fg_ari(labels, cov) < 0.5
    assert miou(labels, of) < 1.0


def test_scene_coverage_is_the_mixture_the_image_shows():
    """`scene_coverage` gives each pixel's fraction of background and of each object: the fractions sum to 1, a
    pixel the label map gives to object i is at least a quarter covered by it (one sample of 16 decides the label),
    and on flat sprites the image is exactly the coverage-weighted mixture of the colours."""
    imgs, labels, objects = make_scenes(8, seed=31, variant="sprites")
    cov = scene_coverage(8, seed=31, variant="sprites")
    assert cov.shape == (8, MAX_OBJECTS + 1, 32, 32) and cov.dtype == np.float32
    assert np.allclose(cov.sum(1), 1) and cov.min() >= 0
    assert np.array_equal(scene_coverage(2, seed=31, variant="sprites", start=3), cov[3:5])
    own = np.take_along_axis(cov, labels[:, None], 1)[:, 0]
    assert own.min() >= 1 / SUPER**2 and (own == 1).mean() > 0.6
    mixed = own < 1
    assert mixed[labels > 0].mean() > 0.15  # at 32x32 many object pixels are mixed: the image cannot tell their label
    for img, c, objs in zip(imgs, cov, objects):
        bg = img[c[0] == 1][0].astype(float) / 255  # the background's colour
        colours = np.stack([bg] + [np.array(o["rgb"]) for o in objs])
        mix = np.einsum("khw,kc->hwc", c[: len(colours)], colours)
        assert np.abs(mix * 255 - img).max() <= 1.0
        assert np.allclose(c[len(colours):], 0)
    with pytest.raises(ValueError, match="variant"):
        scene_coverage(1, variant="clevr")


def test_bad_variant_and_sizes_raise():
    with pytest.raises(ValueError, match="variant"):
        make_scenes(2, variant="clevr")
    with pytest.raises(ValueError, match="Resolution"):
        make_scenes(2, res=4)


def test_training_seeds_never_overlap_held_out():
    from backend.slots.evaluate import VAL_SEED

    assert TRAIN_SEED_BASE > max(EVAL_SEED, TEST_SEED, VAL_SEED) + 100_000
    assert len({EVAL_SEED, TEST_SEED, VAL_SEED}) == 3


def _stats(dist: str, n: int = 120) -> dict:
    imgs, labels, objects = make_scenes(n, seed=3, dist=dist)
    objs = [o for scene in objects for o in scene]
    return {"imgs": imgs, "labels": labels, "counts": [len(s) for s in objects],
            "size": np.array([o["size"] for o in objs]), "angle": np.array([abs(o["angle"]) for o in objs]),
            "sat": np.array([max(o["rgb"]) - min(o["rgb"]) for o in objs]) / np.array([max(o["rgb"]) for o in objs])}


def test_scene_distributions_widen_in_order_and_stay_seeded():
    s, v, h = (_stats(d) for d in ("standard", "varied", "shifted"))
    for stats, d in ((s, "standard"), (v, "varied"), (h, "shifted")):
        lo, hi = DISTS[d]["size"]
        assert lo <= stats["size"].min() and stats["size"].max() <= hi  # sizes within the declared range
        assert min(stats["counts"]) >= DISTS[d]["count"][0] and max(stats["counts"]) <= MAX_OBJECTS
        assert stats["sat"].min() >= DISTS[d]["sat"][0] - 1e-3
    # standard: upright shapes in the standard ranges; the others reach beyond them
    assert s["angle"].max() == 0 and s["size"].min() >= 0.2 and s["sat"].min() >= 0.75 - 1e-3
    assert v["size"].min() < 0.2 and v["size"].max() > 0.4 and v["angle"].max() > 10 and v["sat"].min() < 0.75
    assert h["size"].min() < v["size"].min() and h["size"].max() > v["size"].max()
    assert h["angle"].max() > 30 and h["sat"].min() < DISTS["varied"]["sat"][0]
    assert min(v["counts"]) == 1 and min(s["counts"]) == 2
    # coloured backgrounds appear outside the standard distribution (standard backgrounds are gray)
    def tinted(st):  # share of scenes whose median background pixel is not gray
        bg = [np.median(img[lab == 0].astype(int), 0) for img, lab in zip(st["imgs"], st["labels"])]
        return np.mean([c.max() - c.min() > 12 for c in bg])
    assert tinted(s) == 0 and tinted(h) > 0.1
    # seeded: the same (seed, dist) gives the same scenes; another dist other scenes
    a = make_scenes(3, seed=9, dist="shifted")
    assert np.array_equal(a[0], make_scenes(3, seed=9, dist="shifted")[0]) and a[2] == make_scenes(3, seed=9, dist="shifted")[2]
    assert not np.array_equal(a[0], make_scenes(3, seed=9, dist="varied")[0])
    with pytest.raises(ValueError, match="distribution"):
        make_scenes(2, dist="wild")


def test_standard_scenes_draw_no_extra_numbers():
    """The standard distribution is the shipped models' training data: its scenes match a hand re-draw of the
    standard ranges (one rotation-free shape, anti-aliased), so adding `dist` changed none of them."""
    imgs, labels, objects = make_scenes(20, seed=EVAL_SEED, variant="sprites")
    assert all(o["angle"] == 0.0 for scene in objects for o in scene)
    # anti-aliased: edge pixels mix colours, so some pixels hold colours of no object and not the background
    flat = {tuple(np.rint(np.array(o["rgb"]) * 255).astype(int)) for scene in objects for o in scene}
    assert len({tuple(p) for p in imgs.reshape(-1, 3)} - flat) > 20 * 3


def test_parallel_pool_rendering_equals_one_call():
    assert np.array_equal(render_parallel(7, 11, "sprites", 16, chunk=3),
                          make_scenes(7, seed=11, variant="sprites", res=16)[0])


def test_training_pool_is_cached_and_a_smaller_pool_is_its_prefix(tmp_path, monkeypatch):
    from backend.core import registry

    monkeypatch.setattr(registry, "RUNS_DIR", tmp_path)
    big = training_pool("slots-x", 6, TRAIN_SEED_BASE, "sprites", 16)
    assert (tmp_path / "slots-x" / f"pool-sprites-6-{TRAIN_SEED_BASE}-16.npy").exists()
    assert np.array_equal(training_pool("slots-x", 6, TRAIN_SEED_BASE, "sprites", 16), big)
    assert np.array_equal(training_pool("slots-x", 4, TRAIN_SEED_BASE, "sprites", 16), big[:4])
