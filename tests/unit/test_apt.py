"""Back-end tests of the APT page: data, shipped models, inversion, APT, PGD, metrics, messages."""

from __future__ import annotations

import dataclasses
import os
import subprocess
import sys

import numpy as np
import pytest

from backend.apt import AttackSettings, Digit, attack_report, compare_attacks, load_evaluation
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


@pytest.mark.parametrize("name", ["apt-cnn", "apt-mlp", "apt-robust", "apt-generator", "apt-discriminator",
                                  "apt-cnn-apt"])
def test_cards_are_slim_and_the_generator_keeps_its_tables_in_the_payload(name):
    from backend.core.cards import validate_card_file

    card = validate_card_file(ROOT / "assets" / "checkpoints" / f"{name}.json")
    assert card.readout and card.limitations and card.targets and card.headline["value"] is not None
    assert (ROOT / "assets" / "checkpoints" / f"{name}.pt").stat().st_size < 20 * 2**20
    if name == "apt-discriminator":
        assert {"attacks", "selection"} <= set(load_evaluation(name))
        assert "validation_set(30, seed=2)" in card.readout and "judge_clean_test_acc" in card.metrics


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
    rows = apt.batch_evaluate(n=2, seed=1, classifiers=["mlp"], modes=("apt", "pgd", "apt+pgd"), steps=5,
                              pgd_eps=(0.05, 0.2))
    assert [r["attack"] for r in rows] == ["apt", "pgd ε=0.05", "pgd ε=0.2", "apt+pgd ε=0.1"]
    for r in rows:
        assert r["n"] == 2 and 0 <= r["n_eligible"] <= 2 and "transfer_cnn" in r
        assert np.isnan(r["fooling_rate"]) or 0 <= r["fooled_and_kept"] <= r["fooling_rate"] <= 1


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


# ---------------------------------------------------------------- the page's calls
def test_compare_attacks_puts_apt_beside_pgd(apt):
    digit = Digit.held_out(4)
    assert digit.source == "test" and digit.image.shape == (32, 32, 3)
    cmp = compare_attacks(digit.image, digit.label, AttackSettings(classifier="cnn", steps=30, eps=0.3))
    assert [row["attack"] for row in cmp.table] == ["APT", "PGD ε=0.3"]
    # PGD stays inside its eps ball; the success flag follows the argmax rule
    assert np.abs(cmp.pgd_image.astype(int) - digit.image.astype(int)).max() <= int(0.3 * 255)
    assert cmp.pgd_success == (int(np.argmax(cmp.pgd_probs["cnn"])) != digit.label)
    assert len(cmp.panels()) == 6 and set(cmp.probabilities()) == {"cnn", "mlp", "robust"}
    assert cmp.summary()["settings"]["eps"] == 0.3
    with pytest.raises(ValueError, match="target class equals"):
        compare_attacks(digit.image, digit.label, AttackSettings(target=digit.label))


def test_digits_and_settings_from_page_values():
    drawn = np.zeros((64, 64, 3), np.uint8)
    drawn[8:56, 28:36] = 255
    d = Digit.drawn(drawn)
    assert d.label == d.cnn_reads and d.source == "drawn"
    with pytest.raises(ValueError, match="between 0 and"):
        Digit.held_out(100)
    s = AttackSettings.from_values({"classifier": "robust", "target": "untargeted", "eps": 0.2, "source": "Draw"})
    assert s.classifier == "robust" and s.target is None and s.eps == 0.2
    assert AttackSettings.from_values({"target": "7"}).target == 7


def test_attack_report_reads_the_generator_payload():
    rep = attack_report()
    assert rep is not None and rep.n_images == 100 and rep.eps == 0.1 and rep.sweep_n_images == 30
    attacks = {(r["attack"], r["classifier"]) for r in rep.rows}
    names = ["apt", "apt+pgd ε=0.1", *(f"pgd ε={e:g}" for e in (0.05, 0.1, 0.2, 0.3))]
    assert attacks == {(a, c) for a in names for c in ("cnn", "mlp", "robust")}
    assert all(0 <= r["fooled_and_kept"] <= r["fooling_rate"] for r in rep.rows)
    assert {r["realism_weight"] for r in rep.sweep} >= {0.0, 0.3} and "validation_set(30, seed=2)" in rep.selection


def test_the_defaults_are_the_settings_chosen_on_validation_digits():
    from backend.apt.attack_evaluation import card_settings
    from backend.apt.tuning import APTSettings

    steps, chosen = card_settings()
    page = AttackSettings()
    assert steps == APTSettings().steps == page.steps
    for k, v in chosen.items():
        assert getattr(APTSettings(), k) == v == getattr(page, k), k


# ---------------------------------------------------------------- judge, fooled-and-kept, realism
def test_validation_digits_are_disjoint_from_the_headline_test_digits(apt):
    from backend.apt.data import validation_set

    val, _ = validation_set(30, seed=2)
    test, _ = apt.test_set(100, seed=1)
    assert val.shape == (30, 32, 32, 3)
    assert not {v.tobytes() for v in val} & {t.tobytes() for t in test}


def test_judge_reads_clean_digits_and_only_uint8_arrays():
    import torch

    from backend.apt.data import split_arrays, to_uint8
    from backend.apt.judge import judge_accuracy, judge_probs, judge_reads

    assert judge_accuracy("test") >= 0.98
    x, y = split_arrays("test")
    p = judge_probs(to_uint8(x[:5]))
    assert p.shape == (5, 10) and np.allclose(p.sum(1), 1) and (judge_reads(to_uint8(x[:5])) == p.argmax(1)).all()
    with pytest.raises(ValueError, match="uint8"):
        judge_probs(torch.as_tensor(x[:1]).requires_grad_(True))


def test_the_judge_never_receives_gradients_from_the_attack(apt, monkeypatch):
    """The judge only ever sees the final uint8 numpy images, and the attack's image does not depend on it."""
    import backend.apt.attacks as A

    imgs, labels = apt.test_set(2, seed=4)
    first = apt.attack(imgs[0], int(labels[0]), classifier="robust", steps=20, edits=False)
    seen = []

    def constant_judge(images):
        seen.append(images)
        return np.full((len(images), 10), 0.1)

    monkeypatch.setattr(A, "judge_probs", constant_judge)
    again = apt.attack(imgs[0], int(labels[0]), classifier="robust", steps=20, edits=False)
    assert np.array_equal(first.adversarial, again.adversarial) and first.steps_used == again.steps_used
    assert seen and all(isinstance(a, np.ndarray) and a.dtype == np.uint8 for a in seen)


def test_fooled_and_kept_is_computed_from_the_re_classified_images(apt):
    from backend.apt.fooling_rates import summarise, with_pgd_on_top
    from backend.apt.judge import judge_probs

    imgs, labels = apt.test_set(3, seed=4)
    recs = [apt.attack(im, int(y), classifier="cnn", steps=30, edits=False) for im, y in zip(imgs, labels)]
    for r in recs:
        assert np.allclose(r.judge_after, judge_probs(r.adversarial[None])[0])
        assert r.fooled_and_kept == (r.success and int(np.argmax(judge_probs(r.adversarial[None])[0])) == r.label)
    stacked = with_pgd_on_top(recs[0], eps=0.3, pgd_steps=10, seed=0)
    assert np.allclose(stacked.judge_after, judge_probs(stacked.adversarial[None])[0])
    # an "attack" whose image is another class's digit: fooled, but the judge does not keep the class
    other = next(i for i in range(3) if labels[i] != labels[0])
    swapped = dataclasses.replace(recs[0], success=True, eligible=True, adversarial=imgs[other],
                                  judge_after=judge_probs(imgs[other][None])[0])
    row = summarise([swapped], "apt", "cnn", None, 0.0)
    assert row["fooling_rate"] == 1.0 and row["fooled_and_kept"] == 0.0


def test_the_realism_term_changes_the_tuned_images():
    """A few tuning steps on tiny random networks: realism weight 0 vs 1 gives different images; D=None
    equals weight 0."""
    import torch

    from backend.apt.model import CNN, CVAE, Discriminator
    from backend.apt.tuning import APTSettings, apt_tune

    torch.manual_seed(0)
    G, P, D = CVAE(4, width=8), CNN(width=4), Discriminator(width=8)
    for m in (G, P, D):
        m.requires_grad_(False)

    class NeverFooled(torch.nn.Module):  # always reads class 3, so tuning never stops early
        def forward(self, x):
            return torch.nn.functional.one_hot(torch.full((len(x),), 3), 10).float() * 10 + 0 * x.mean()

    x = torch.rand(1, 1, 32, 32) * 2 - 1
    w = torch.randn(1, 4)
    out = {}
    for name, weight, d in (("off", 0.0, D), ("none", 1.0, None), ("on", 1.0, D)):
        s = APTSettings(steps=5, lr=1e-2, realism_weight=weight)
        out[name] = apt_tune(G, NeverFooled(), P, x, 3, w, settings=s, seed=0, D=d)[1]
    assert torch.equal(out["off"], out["none"])
    assert (out["on"] - out["off"]).abs().max() > 1e-4


# ---------------------------------------------------------------- training recipes
def test_recipes_and_group_are_registered():
    from backend.domains import groups, recipes

    assert groups()["apt"] == ["apt-cnn", "apt-mlp", "apt-robust", "apt-generator", "apt-discriminator", "apt-cnn-apt"]
    assert set(groups()["apt"]) <= set(recipes())


def _context(recipe, phase_index=0):
    import torch

    from backend.core.training import Context

    phase = recipe.phases(20)[phase_index]
    return Context(0, phase, phase_index, 0, torch.device("cpu"), np.random.default_rng(0),
                   torch.Generator().manual_seed(0), 0)


def test_robust_recipe_trains_on_pgd_examples():
    """The robust recipe's loss on a batch is higher than the plain recipe's: half of it is PGD examples."""
    import torch

    from backend.apt.train import RECIPES

    plain, robust = RECIPES["apt-cnn"](), RECIPES["apt-robust"]()
    net = robust.load_shipped("cpu")
    batch = plain.batch(_context(plain))
    assert batch[0].shape == (64, 1, 32, 32) and batch[0].min() >= -1
    with torch.enable_grad():
        clean = float(plain.loss(net, batch, _context(plain)))
        adversarial = float(robust.loss(net, batch, _context(robust)))
    assert adversarial > clean + 0.05, (clean, adversarial)


def test_generator_recipe_phases_train_p_then_the_cvae():
    from backend.apt.train import RECIPES

    recipe = RECIPES["apt-generator"]()
    assert [p.name for p in recipe.phases(20)] == ["perceptual", "generator"]
    model = recipe.build(_context(recipe))
    ctx = _context(recipe, 1)
    loss, logs = recipe.loss(model, recipe.batch(ctx), ctx)
    assert float(loss.detach()) > 0 and {"recon", "kl"} <= set(logs) and "class" not in logs
    recipe = RECIPES["apt-generator"](class_weight=0.5)
    recipe.on_phase_start(model, ctx := _context(recipe, 1))  # loads the frozen apt-cnn as the judge
    loss, logs = recipe.loss(model, recipe.batch(ctx), ctx)
    assert logs["class"] > 0


def test_discriminator_recipe_scores_real_digits_above_generated_ones():
    """The shipped D's hinge loss on a fresh batch is below chance (2), and real test digits score above samples."""
    from backend.apt.train import RECIPES

    recipe = RECIPES["apt-discriminator"]()
    D = recipe.load_shipped("cpu")
    ctx = _context(recipe)
    recipe.on_phase_start(D, ctx)
    loss, logs = recipe.loss(D, recipe.batch(ctx), ctx)
    assert float(loss) < 1.5 and {"real", "fake"} <= set(logs)
    card = load_evaluation("apt-discriminator")
    assert card["attacks"]["judge_clean_test_acc"] >= 0.98


@pytest.mark.slow
def test_group_smoke_run_writes_four_checkpoints_the_loader_reads(tmp_path):
    from backend.apt.train import SMOKE

    env = {**os.environ, "LATENTLAB_CHECKPOINTS": str(tmp_path / "ckpt"), "LATENTLAB_RUNS": str(tmp_path / "runs")}
    sets = [a for k, v in SMOKE.items() for a in ("--set", f"{k}={v!r}")]
    subprocess.run([sys.executable, "-m", "backend.train", "apt", "--steps", "20", "--device", "cpu", *sets],
                   cwd=ROOT, env=env, check=True, timeout=600, capture_output=True)
    assert sorted(p.name for p in (tmp_path / "ckpt").iterdir()) == sorted(
        f"apt-{n}.{e}" for n in ("cnn", "mlp", "robust", "generator", "discriminator", "cnn-apt")
        for e in ("json", "pt"))
    code = ("from backend.apt import load_models, attack_report; m = load_models(); "
            "assert m.classifiers == ['cnn', 'mlp', 'robust']; assert attack_report().n_images == 2")
    subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, check=True, timeout=120)
