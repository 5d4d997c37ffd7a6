"""Back-end tests of the APT page: data, shipped models, inversion, APT, PGD, metrics, messages."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from tests.conftest import ROOT


@pytest.fixture(scope="module")
def apt():
    import backend.apt as apt

    apt.load_models()
    return apt


# ---------------------------------------------------------------- data
def test_split_is_fixed_stratified_and_disjoint():
    from backend.apt.data import split_arrays

    xtr, ytr = split_arrays("train")
    xte, yte = split_arrays("test")
    assert xtr.shape == (1347, 32, 32) and xte.shape == (450, 32, 32)
    share = np.bincount(yte) / (np.bincount(yte) + np.bincount(ytr))
    assert np.abs(share - 0.25).max() < 0.01  # stratified
    assert xtr.min() >= -1 and xtr.max() <= 1 and xtr.min() < -0.99 and xtr.max() > 0.9
    tr = {a.tobytes() for a in xtr}
    assert sum(a.tobytes() in tr for a in xte) <= 2  # the 8×8 data hold a few exact duplicates at most


def test_test_set_scaling_and_seeds(apt):
    imgs, labels = apt.test_set(n=8, seed=0)
    assert imgs.shape == (8, 32, 32, 3) and imgs.dtype == np.uint8 and labels.shape == (8,)
    assert np.array_equal(imgs[..., 0], imgs[..., 2])  # grey
    again, _ = apt.test_set(n=8, seed=0)
    other, _ = apt.test_set(n=8, seed=1)
    assert np.array_equal(imgs, again) and not np.array_equal(imgs, other)
    with pytest.raises(ValueError, match="between 1 and 450"):
        apt.test_set(n=0)


def test_upsample_and_uint8_roundtrip():
    from backend.apt.data import from_uint8, to_uint8, upsample

    up = upsample(np.full((1, 8, 8), 0.5, np.float32))
    assert up.shape == (1, 32, 32) and np.allclose(up, 0.0, atol=1e-6)  # 0.5 -> 0 in [-1, 1]
    x = np.linspace(-1, 1, 32 * 32, dtype=np.float32).reshape(32, 32)
    assert np.abs(from_uint8(to_uint8(x)) - x).max() <= 1 / 127.5 + 1e-6


def test_prepare_image_converts_drawings_and_rejects_blank():
    from backend.apt.data import prepare_image

    with pytest.raises(ValueError, match="blank"):
        prepare_image(np.zeros((200, 300, 3), np.uint8))
    with pytest.raises(ValueError, match="blank"):
        prepare_image(np.full((50, 50, 4), 255, np.uint8))
    # black "1" on white, odd size: inverted, cropped, centred, 32×32
    img = np.full((301, 157, 3), 255, np.uint8)
    img[40:260, 70:90] = 0
    out = prepare_image(img)
    assert out.shape == (32, 32, 3) and out.dtype == np.uint8
    assert out[0].max() < 60 and out[16, 16, 0] > 150  # dark border, bright stroke in the middle


# ---------------------------------------------------------------- shipped models
def test_classifiers_accuracy_on_test_split(apt):
    from backend.apt.data import split_arrays, to_uint8

    x, y = split_arrays("test")
    imgs = to_uint8(x)
    acc = {c: float((apt.classify(imgs, c).argmax(1) == y).mean()) for c in ("cnn", "mlp", "robust")}
    assert acc["cnn"] >= 0.97 and acc["mlp"] >= 0.97, acc
    assert acc["robust"] >= 0.95, acc
    p = apt.classify(imgs[:3], "mlp")
    assert p.shape == (3, 10) and np.allclose(p.sum(1), 1, atol=1e-5)


def test_cards_have_the_required_keys():
    from backend.core.registry import read_card

    for name in ("apt-generator", "apt-cnn", "apt-mlp", "apt-robust"):
        card = read_card(name)
        for k in ("command", "config", "data", "why", "seed", "steps", "wall_time_s", "device", "metrics",
                  "baselines", "headline"):
            assert k in card, (name, k)
        assert {"metric", "label", "value", "baseline", "baseline_label"} <= set(card["headline"])
        assert (ROOT / "assets" / "checkpoints" / f"{name}.pt").stat().st_size < 20 * 2**20


def test_generated_digits_are_recognised(apt):
    imgs = np.concatenate([apt.generate(c, seed=5, n=10) for c in range(10)])
    labels = np.repeat(np.arange(10), 10)
    acc = float((apt.classify(imgs, "cnn").argmax(1) == labels).mean())
    assert acc >= 0.85, acc
    with pytest.raises(ValueError, match="digit 0–9"):
        apt.generate(12)


# ---------------------------------------------------------------- attacks
@pytest.mark.slow
def test_apt_fools_cnn_on_fixed_images_and_keeps_generator_local(apt):
    import torch

    m = apt.load_models()
    before = sum(float(p.double().sum()) for p in m.generator.parameters())
    imgs, labels = apt.test_set(n=3, seed=1)
    results = [apt.attack(i, int(y), classifier="cnn", seed=0) for i, y in zip(imgs, labels)]
    after = sum(float(p.double().sum()) for p in m.generator.parameters())
    assert before == after, "the cached generator must not be modified"
    for r in results:
        assert r.adversarial.shape == (32, 32, 3) and r.adversarial.dtype == np.uint8
        assert r.metrics["pivot_psnr"] > 18, r.metrics["pivot_psnr"]  # inversion reconstructs
        assert set(r.probs_before) == set(r.probs_after) == {"cnn", "mlp", "robust"}
        # the tuned generator changed much less at other latents than at the pivot
        assert r.metrics["rmse_change_other_latents"] < 0.05
        assert r.edits["tuned"].shape == (3, 9, 32, 32, 3)
    assert sum(r.success for r in results) >= 2
    for r in results:
        if r.success:
            assert int(np.argmax(r.probs_after["cnn"])) != r.label
            assert r.steps_used < 300
            assert r.metrics["ssim"] > 0.5
    assert torch.is_grad_enabled()


def test_attack_is_reproducible_and_cancellable(apt):
    from backend.core.progress import Cancelled

    imgs, labels = apt.test_set(n=1, seed=1)
    a = apt.attack(imgs[0], int(labels[0]), steps=5, seed=3)
    b = apt.attack(imgs[0], int(labels[0]), steps=5, seed=3)
    assert np.array_equal(a.adversarial, b.adversarial)
    assert a.frames and a.frames[0][2].shape == (32, 32, 3)
    with pytest.raises(Cancelled):
        apt.attack(imgs[0], int(labels[0]), steps=50, progress=lambda step, total, msg: step > 20)


def test_pgd_respects_eps_and_range(apt):
    imgs, labels = apt.test_set(n=2, seed=2)
    for eps in (8 / 255, 0.1, 0.3):
        adv = apt.pgd(imgs[0], int(labels[0]), classifier="cnn", eps=eps, steps=10)
        d = np.abs(adv.astype(int) - imgs[0].astype(int))
        assert adv.dtype == np.uint8 and d.max() <= int(eps * 255 + 1e-6)
    adv = apt.pgd(imgs[1], int(labels[1]), classifier="cnn", eps=0.3, steps=40)
    assert int(np.argmax(apt.classify(adv, "cnn")[0])) != int(labels[1])  # ε = 0.3 breaks the plain CNN
    res = apt.attack(imgs[1], int(labels[1]), mode="apt+pgd", steps=3, eps=0.05, pgd_steps=5)
    assert res.mode == "apt+pgd" and res.adversarial.shape == (32, 32, 3)


def test_user_mistakes_raise_value_errors(apt):
    imgs, labels = apt.test_set(n=1, seed=0)
    y = int(labels[0])
    with pytest.raises(ValueError, match="32×32"):
        apt.attack(np.zeros((28, 28, 3), np.uint8), y)
    with pytest.raises(ValueError, match="Unknown classifier"):
        apt.classify(imgs, classifier="resnet")
    with pytest.raises(ValueError, match="target class equals"):
        apt.attack(imgs[0], y, target=y)
    with pytest.raises(ValueError, match="Unknown mode"):
        apt.attack(imgs[0], y, mode="fgsm")
    with pytest.raises(ValueError, match="eps"):
        apt.pgd(imgs[0], y, eps=3)
    with pytest.raises(ValueError, match="Unknown APT setting"):
        apt.attack(imgs[0], y, steps=1, bogus=1)


def test_batch_evaluate_rows(apt):
    rows = apt.batch_evaluate(n=2, seed=1, classifiers=["mlp"], modes=("apt", "pgd", "apt+pgd"), steps=5)
    assert [r["mode"] for r in rows] == ["apt", "pgd", "apt+pgd"]
    for r in rows:
        assert r["n"] == 2 and 0 <= r["n_eligible"] <= 2 and "transfer_cnn" in r
        assert np.isnan(r["fooling_rate"]) or 0 <= r["fooling_rate"] <= 1


# ---------------------------------------------------------------- metrics
def test_change_metrics():
    from backend.apt import metrics as M

    rng = np.random.default_rng(0)
    a = (rng.random((32, 32)) * 0.5).astype(np.float64)
    assert M.ssim(a, a) == pytest.approx(1.0)
    assert M.l2(a, a) == 0 and M.psnr(a, a) == float("inf")
    b = a.copy()
    b[3, 4] += 0.5
    assert M.linf(a, b) == pytest.approx(0.5) and M.l2(a, b) == pytest.approx(0.5)
    noise = a + rng.normal(0, 0.1, a.shape)
    yy, xx = np.mgrid[:32, :32]
    smooth = a + 0.1 * np.exp(-((yy - 16) ** 2 + (xx - 16) ** 2) / 40)
    assert M.high_freq_share(a, noise) > 0.6 and M.high_freq_share(a, smooth) < 0.05
    assert M.ssim(a, noise) < 0.9 < M.ssim(a, smooth)
    assert M.fooling_rate([True, False, True], [True, True, False]) == 0.5
    u8 = np.zeros((32, 32, 3), np.uint8)
    assert M.rmse(u8, u8 + 255) == pytest.approx(1.0)


# ---------------------------------------------------------------- training code
def test_training_loops_run_on_tiny_data():
    import torch

    from backend.apt import nets
    from backend.apt.data import split_arrays
    from backend.apt.model import CVAE

    x, y = split_arrays("train")
    x, y = x[:64], y[:64]
    torch.manual_seed(0)
    m = nets.make_classifier("cnn")
    losses = []
    nets.train_classifier(m, x, y, steps=3, seed=0, adv_eps01=0.1, adv_steps=2, batch=16,
                          on_step=lambda k, loss, opt: losses.append(loss))
    assert len(losses) == 3 and all(np.isfinite(losses))
    g = CVAE()
    nets.train_cvae(g, x, y, steps=2, seed=0, batch=16)
    out = g.decode(torch.zeros(2, g.latent), torch.tensor([1, 2]))
    assert out.shape == (2, 1, 32, 32) and float(out.detach().abs().max()) <= 1


def test_trainer_is_registered_and_backend_has_no_streamlit():
    from backend.domains import trainers

    assert "apt" in trainers()
    code = "import sys, backend.apt, backend.apt.train; assert 'streamlit' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], cwd=ROOT, check=True, timeout=120)
