"""Unit tests of the slots public door (backend.slots.api, backend.slots.report) on the shipped checkpoints: the
cards and the payloads' evaluation, the page requests, and the shipped models against k-means on fresh scenes."""

from __future__ import annotations

import numpy as np
import pytest

from backend.core import read_card
from backend.slots import (
    dataset_metrics,
    fg_ari,
    kmeans_segment,
    load_model,
    make_scenes,
    matched_slots,
    miou,
    model_report,
    posterior_masks,
    segment_scenes,
    segment_upload,
)
from backend.slots.metrics import KMEANS_POS_WEIGHT


@pytest.mark.parametrize("variant", ["sprites", "textured"])
def test_report_holds_the_cards_numbers_and_the_payloads_detail(variant):
    card, r = read_card(f"slots-{variant}"), model_report(variant)
    assert r.n_test == 1000 and r.steps == card["steps"]
    assert r.metrics["fg_ari"] == pytest.approx(card["metrics"]["fg_ari"], abs=1e-4)
    assert card["headline"]["value"] == pytest.approx(card["metrics"]["fg_ari"], abs=1e-3)
    assert card["headline"]["baseline"] == pytest.approx(card["baselines"]["kmeans"]["fg_ari"], abs=1e-3)
    assert card["command"].startswith(f"python -m backend.train slots-{variant} --steps ")
    assert [t["metric"] for t in r.missed] == [t["metric"] for t in card["targets"] if not t["met"]]
    # the readout the card states is the one the loaded model uses
    model = load_model(variant)
    assert (model.iters, model.merge) == (r.iters, r.merge) and f"{r.iters} attention iterations" in r.readout
    # every readout and reference in range; the coverage is a reference, not a bound
    for row in r.table:
        assert 0 < row["FG-ARI"] <= 1 and 0 < row["mIoU"] <= 1, row
    cov, cov_of = r.baselines["coverage_majority"], r.baselines["coverage_objects_first"]
    assert 0.85 < cov["fg_ari"] < cov_of["fg_ari"] < 1 and cov_of["miou"] < cov["miou"]
    assert r.probe["trained"]["mean"] > r.probe["untrained"]["mean"]
    # the paper's readout beside the shipped one and k-means, on the test and the shifted scenes, with intervals
    from backend.slots import TEST_SEED

    assert r.test_seed == TEST_SEED and f"Test seed {TEST_SEED}" in card["readout"]
    assert [key in row["readout"] for key, row in zip(("shipped readout", "paper readout", "k-means"),
                                                       r.comparison)] == [True] * 3
    paper = card["metrics"]["paper_readout"]
    assert paper["fg_ari"] == pytest.approx(r.metrics["fg_ari_at_train_iters"], abs=1e-3)
    for d in (paper, card["metrics"]["shifted"], card["baselines"]["kmeans_shifted"], card["baselines"]["kmeans"]):
        assert d["fg_ari_lo"] <= d["fg_ari"] <= d["fg_ari_hi"] and d["miou_lo"] <= d["miou"] <= d["miou_hi"]
    assert len(r.snapshots) >= 3 and r.selected_step in [s["step"] for s in r.snapshots]


def test_segment_scenes_scores_each_scene_and_carries_the_report():
    rep = segment_scenes("sprites", n=6, seed=3)
    imgs, labels, _ = make_scenes(6, seed=3, variant="sprites")
    assert np.array_equal(rep.images, imgs) and np.array_equal(rep.labels, labels)
    masks = load_model("sprites").segment(imgs).masks
    assert np.allclose(rep.fg_ari.mean(), fg_ari(labels, masks)) and rep.mean_miou == pytest.approx(miou(labels, masks))
    assert np.allclose(rep.posterior_fg_ari.mean(), fg_ari(labels, posterior_masks(imgs, rep.seg)))
    assert np.allclose(rep.slot_shares.sum(1), 1) and rep.report.name == "slots-sprites"
    plain = segment_scenes("sprites", n=6, seed=3, merge=False, num_slots=6)
    assert plain.seg.merged_into is None and plain.seg.masks.shape[1] == 6
    with pytest.raises(ValueError, match="scenes"):
        segment_scenes("sprites", n=0)
    with pytest.raises(ValueError, match="variant"):
        segment_scenes("clevr")


def test_segment_upload_shrinks_segments_and_rejects_junk():
    from backend.core import png_bytes

    img = np.kron(make_scenes(1, seed=5)[0][0], np.ones((20, 10, 1), np.uint8))  # 640x320
    out = segment_upload(png_bytes(img), "sprites")
    assert out.image.shape == (512, 256, 3) and out.labels.shape == (512, 256)
    assert out.seg.masks.shape[2:] == (512, 256) and out.slot_shares.sum() == pytest.approx(1)
    with pytest.raises(ValueError):
        segment_upload(b"not an image" * 10, "sprites")


def test_dataset_metrics_score_every_method_on_the_same_scenes():
    res = dataset_metrics("sprites", n=8, seed=10_000)
    assert set(res.scores) == {"model", "posterior", "kmeans", "coverage", "coverage_objects_first"}
    assert all(len(v) == 8 for d in res.scores.values() for v in d.values()) and "mse" in res.scores["model"]
    assert res.means["model"]["fg_ari"] == pytest.approx(res.scores["model"]["fg_ari"].mean())


def test_shipped_sprites_merging_raises_miou():
    """The shipped model's default (the merge threshold chosen on validation) scores a higher mIoU on fresh scenes
    than the plain argmax, and the report gives both readouts."""
    r = model_report("sprites")
    m = load_model("sprites")
    assert m.merge == r.merge is not None
    imgs, labels, _ = make_scenes(48, seed=4343, variant="sprites")
    with_merge, plain = miou(labels, m.segment(imgs).masks), miou(labels, m.segment(imgs, merge=False).masks)
    assert with_merge > plain + 0.05, (with_merge, plain)
    assert r.metrics["miou"] > r.metrics["miou_no_merge"]


def test_sprites_posterior_readout_on_fresh_scenes_agrees_with_its_report():
    r = model_report("sprites")
    imgs, labels, _ = make_scenes(48, seed=5151, variant="sprites")
    seg = load_model("sprites").segment(imgs)
    post = fg_ari(labels, posterior_masks(imgs, seg))
    assert abs(post - r.metrics["fg_ari_posterior"]) < 0.08, (post, r.metrics["fg_ari_posterior"])
    assert post > fg_ari(labels, seg.masks)


@pytest.mark.slow
@pytest.mark.parametrize("variant", ["sprites", "textured"])
def test_shipped_model_vs_kmeans_on_fresh_scenes(variant):
    """On 48 fresh scenes the model's FG-ARI agrees with its card and beats k-means."""
    card = read_card(f"slots-{variant}")
    m = load_model(variant)
    imgs, labels, _ = make_scenes(48, seed=777, variant=variant)
    ours = fg_ari(labels, m.segment(imgs, seed=0).masks)
    km = fg_ari(labels, kmeans_segment(imgs, k=m.num_slots, pos_weight=KMEANS_POS_WEIGHT[variant]))
    assert abs(ours - card["metrics"]["fg_ari"]) < 0.12, (ours, card["metrics"]["fg_ari"])
    assert abs(km - card["baselines"]["kmeans"]["fg_ari"]) < 0.12, (km, card["baselines"]["kmeans"]["fg_ari"])
    assert ours > km, (ours, km)
    if variant == "textured":
        assert ours - km > 0.15, (ours, km)


def test_matched_slots_contract():
    model = load_model("sprites")
    codes, factors, names, discrete = matched_slots("sprites", n=20, seed=10_000, model=model)
    assert codes.dtype == np.float32 and codes.ndim == 2 and codes.shape[1] == model.net.config["slot_dim"]
    assert factors.shape == (len(codes), len(names)) and discrete.dtype == bool and len(discrete) == len(names)
    assert 40 <= len(codes) <= 80  # 2-4 visible objects per scene
    assert names[:2] == ["shape", "color"] and discrete[:2].all() and not discrete[2:].any()
