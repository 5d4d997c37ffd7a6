"""Unit tests of backend.slots.model (the autoencoder) and backend.slots.inference (`SlotModel.segment`: sizes,
test-time slots and iterations, duplicate-slot merging, test-time passes, the posterior readout) on the shipped
sprites model."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from backend.slots import ari_per_image, fg_ari, load_model, make_scenes, miou, posterior_masks
from backend.slots.model import SlotAttentionAE
from backend.slots.train import grow_model

TINY = {"resolution": 16, "enc_ch": 8, "enc_layers": 2, "slot_dim": 16, "mlp_hidden": 16, "dec_ch": 8, "dec_init": 8,
        "num_slots": 3}


@pytest.fixture(scope="module")
def sprites_model():
    return load_model("sprites")


def test_segment_shapes_and_mask_sums(sprites_model):
    m = sprites_model
    imgs, labels, _ = make_scenes(5, seed=99, variant="sprites")
    out = m.segment(imgs, seed=0)
    k, r = m.num_slots, m.resolution
    assert out.masks.shape == (5, k, r, r) and out.masks.dtype == np.float32
    assert np.allclose(out.masks.sum(1), 1, atol=1e-4)
    assert out.recon.shape == (5, r, r, 3) and out.recon.dtype == np.uint8
    assert out.slot_recons.shape == (5, k, r, r, 3) and out.slots.shape[:2] == (5, k)
    # any input size; outputs at the input size
    big = m.segment(np.zeros((2, 77, 50, 3), np.uint8), seed=0)
    assert big.masks.shape == (2, k, 77, 50) and np.allclose(big.masks.sum(1), 1, atol=1e-4)
    assert big.recon.shape == (2, 77, 50, 3)
    # test-time slots and iterations
    more = m.segment(imgs[:2], num_slots=7, iters=5, seed=0)
    assert more.masks.shape == (2, 7, r, r)
    # same seed, same answer
    again = m.segment(imgs, seed=0)
    assert np.array_equal(again.masks, out.masks)
    with pytest.raises(ValueError, match="slots"):
        m.segment(imgs, num_slots=0)
    with pytest.raises(ValueError, match="RGB"):
        m.segment(np.zeros((4, 4)))


@pytest.mark.slow
def test_posterior_readout_of_the_shipped_sprites_model(sprites_model):
    """On flat-coloured fresh scenes the posterior readout of the same model is a segmentation about as good as its
    alpha masks, its masks sum to 1, and one image alone gives the same posterior."""
    imgs, labels, _ = make_scenes(48, seed=778, variant="sprites")
    seg = sprites_model.segment(imgs, seed=0)
    post = posterior_masks(imgs, seg)
    assert np.allclose(post.sum(1), 1, atol=1e-5)
    one = seg.scene(5)  # one image alone gives the same posterior
    assert one.masks.shape == (1, *seg.masks.shape[1:]) and np.allclose(posterior_masks(imgs[5:6], one)[0], post[5])
    alpha, posterior = fg_ari(labels, seg.masks), fg_ari(labels, post)
    assert alpha > 0.8 and posterior > 0.75 and abs(posterior - alpha) < 0.06, (posterior, alpha)


def test_shipped_sprites_segments_hug_objects_and_one_slot_owns_the_background():
    """Each object's best slot segment is close to the object, and one slot holds most of the background (the mask
    sharpening phase's effect: without it the slots share the plain background around their objects)."""
    m = load_model("sprites")
    imgs, labels, _ = make_scenes(32, seed=4242, variant="sprites")
    pred = m.segment(imgs, seed=0).masks.argmax(1)
    obj, bg = [], []
    for p, t in zip(pred, labels):
        for o in np.unique(t):
            best = max(((p == s) & (t == o)).sum() / ((p == s) | (t == o)).sum() for s in np.unique(p))
            (bg if o == 0 else obj).append(best)
    assert np.mean(obj) > 0.7 and np.mean(bg) > 0.8, (np.mean(obj), np.mean(bg))


def test_segment_merge_option_keeps_the_reconstruction():
    m = load_model("sprites")
    imgs, labels, _ = make_scenes(24, seed=99, variant="sprites")
    plain = m.segment(imgs, merge=False)
    merged = m.segment(imgs, merge=0.7)
    assert plain.merged_into is None and merged.merged_into.shape == (24, m.num_slots)
    assert np.array_equal(plain.recon, merged.recon)
    assert np.allclose(merged.masks.sum(1), 1, atol=1e-4) and merged.masks.min() >= 0
    gone = merged.merged_into != np.arange(m.num_slots)
    assert gone.any() and np.allclose(merged.masks[gone], 0)
    assert np.all(merged.slot_recons[gone] == 0)  # a merged-away slot draws nothing
    # each pixel keeps the slot that won it, renamed to its group's: the argmax is the plain one relabelled
    relabelled = np.take_along_axis(merged.merged_into[:, :, None, None], plain.labels[:, None], 1)[:, 0]
    assert np.array_equal(merged.labels, relabelled)
    big = m.segment(np.repeat(np.repeat(imgs[:2], 2, 1), 2, 2), merge=0.7)
    assert big.masks.shape == (2, m.num_slots, 64, 64) and np.allclose(big.masks.sum(1), 1, atol=1e-4)
    with pytest.raises(ValueError, match="merge threshold"):
        m.segment(imgs[:1], merge=1.5)


def test_segment_passes_average_mirror_and_initialisations():
    """`passes` averages the alpha masks over slot initialisations and the mirror image: one pass is the default
    call, the masks keep their contract, and two passes (image + mirror) make the segmentation mirror-equivariant."""
    m = load_model("sprites")
    imgs, labels, _ = make_scenes(12, seed=606, variant="sprites")
    one = m.segment(imgs)
    assert np.array_equal(m.segment(imgs, passes=1).masks, one.masks)
    two = m.segment(imgs, passes=2)
    assert two.masks.shape == one.masks.shape and two.recon.shape == one.recon.shape
    assert np.allclose(two.masks.sum(1), 1, atol=1e-4) and two.masks.min() >= 0
    assert np.array_equal(two.slots, one.slots)  # the first pass's slot vectors
    assert not np.allclose(two.masks, one.masks)
    mirrored = m.segment(np.ascontiguousarray(imgs[:, :, ::-1]), passes=2)
    agree = ari_per_image(two.labels, mirrored.masks[..., ::-1], foreground_only=False)
    assert agree.min() > 0.999, agree
    big = m.segment(np.repeat(np.repeat(imgs[:2], 3, 1), 3, 2), passes=2)
    assert big.masks.shape == (2, m.num_slots, 96, 96) and np.allclose(big.masks.sum(1), 1, atol=1e-4)
    for bad in (0, 17, 2.5, True):
        with pytest.raises(ValueError, match="passes"):
            m.segment(imgs[:1], passes=bad)


@pytest.mark.slow
def test_averaging_passes_raises_fg_ari_and_miou():
    """On fresh scenes averaging 8 passes (4 initialisations x the mirror image) beats one pass on FG-ARI and mIoU."""
    p = 8
    m = load_model("sprites")
    imgs, labels, _ = make_scenes(128, seed=8080, variant="sprites")
    one, avg = m.segment(imgs).masks, m.segment(imgs, passes=p).masks
    gain = ari_per_image(labels, avg) - ari_per_image(labels, one)  # paired, per scene
    assert gain.mean() > 0.005 and (gain > 1e-3).sum() > 1.5 * (gain < -1e-3).sum(), gain
    assert miou(labels, avg) > miou(labels, one)


def test_growing_the_decoder_keeps_what_the_network_computes():
    """`grow_model` adds identity-initialised residual blocks: the grown network has more weights and computes
    exactly what the base one did."""
    torch.manual_seed(0)
    net = SlotAttentionAE(TINY).eval()
    grown = grow_model(net, {**net.config, "dec_refine": 2}).eval()
    x, noise = torch.rand(2, 3, 16, 16) * 2 - 1, torch.randn(2, 3, 16)
    assert len(grown.refine) == 2
    assert torch.allclose(grown(x, noise=noise)["recon"], net(x, noise=noise)["recon"], atol=1e-6)
    with pytest.raises(RuntimeError):
        net.load_state_dict(grown.state_dict())  # the grown architecture really has more weights


@pytest.mark.parametrize("opts", [
    {"slot_init": "per_slot"},
    {"enc_kernel": 1, "dec_init": 16, "dec_kernel": 1, "dec_layers": 2},
    {"qkv_bias": True, "cosine_attn": 8.0},
])
def test_model_options_keep_the_mask_contract(opts):
    """The optional variants (per-slot means, per-pixel MLP decoder, cosine attention, k/q/v biases) still give
    masks that are a softmax over slots, also with more or fewer slots than trained."""
    import torch

    torch.manual_seed(0)
    net = SlotAttentionAE({"resolution": 16, "num_slots": 3, "enc_ch": 8, "slot_dim": 16, "mlp_hidden": 16,
                           "dec_ch": 8, **opts}).eval()
    x = torch.rand(2, 3, 16, 16) * 2 - 1
    for k in (2, 3, 5):
        out = net(x, num_slots=k)
        assert out["masks"].shape == (2, k, 16, 16)
        assert torch.allclose(out["masks"].sum(1), torch.ones(2, 16, 16), atol=1e-5)
        assert out["slots"].shape == (2, k, 16)
    if opts.get("slot_init") == "per_slot":
        means = net.slot_attention.init_means(5)
        assert torch.allclose(means[0, 3], net.slot_attention.mu[0].mean(0))  # extra slots start at the average
        assert not torch.allclose(means[0, 0], means[0, 1])
