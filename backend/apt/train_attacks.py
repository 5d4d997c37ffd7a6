"""`python -m backend.train apt-discriminator | apt-cnn-apt`: the APT recipes that need the other APT models.

- `apt-discriminator`: the realism discriminator D of APT's tuning loss, trained against the frozen
  generator; its evaluation is the attack evaluation (settings chosen on validation digits, then APT, APT+PGD
  and PGD at several eps on the headline test digits, fooled-and-kept under the independent judge).
- `apt-cnn-apt`: the paper's robustness by fine-tuning: apt-cnn fine-tuned on APT images of training digits.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from backend.apt.attack_evaluation import EVAL_CONFIG as ATTACK_EVAL
from backend.apt.train import DATA, PAPER, SMOKE, DigitClassifier, digit_batch
from backend.core.training import Phase, Recipe


class DiscriminatorRecipe(Recipe):
    """The realism discriminator D of APT's tuning loss, trained against the frozen shipped generator (hinge
    loss: real training digits vs the generator's reconstructions and class-conditional samples, real digits
    paired with a wrong class and real digits with pixel noise). Its card
    holds the attack evaluation, which needs every APT model: settings chosen on validation digits, then
    APT, APT+PGD and PGD at several eps on the headline test digits, with the judge's fooled-and-kept rate."""

    name = "apt-discriminator"
    title = "APT realism discriminator D, and the attack evaluation (fooled-and-kept, APT vs PGD)"
    paper, data = PAPER, DATA
    config = {"width": 32, "batch": 64, "lr": 1e-3, "max_shift": 1, **ATTACK_EVAL}
    default_steps = 200
    evaluate_no_grad = False  # the attacks need gradients
    smoke = SMOKE

    def __init__(self, **overrides):
        super().__init__(**overrides)
        self.frozen = None  # (G, per-class latent mean, Cholesky factors) of the shipped generator

    def build(self, ctx):
        from backend.apt.model import Discriminator

        return Discriminator(self.config["width"])

    def phases(self, steps):
        return [Phase("train", steps, batch=self.config["batch"], lr=self.config["lr"])]

    def on_phase_start(self, model, ctx):
        if self.frozen is None:
            from backend.apt.loading import class_cholesky, frozen_network
            from backend.core.registry import load_checkpoint

            p, _ = load_checkpoint("apt-generator")
            G = frozen_network(p["config"], p["state"], ctx.device)
            self.frozen = (G, p["class_mean"].to(ctx.device), class_cholesky(p["class_cov"]).to(ctx.device))
        return None

    def batch(self, ctx):
        G, mean, chol = self.frozen
        x, y = digit_batch(ctx, self.config["max_shift"])
        n, latent = len(x), mean.shape[1]
        with torch.no_grad():
            mu, logvar = G.encode(x, y)
            noise = torch.randn(n, latent, generator=ctx.generator).to(ctx.device)
            rec = G.decode(mu + noise * (0.5 * logvar).exp(), y)
            yz = torch.as_tensor(ctx.rng.integers(0, 10, n)).to(ctx.device)
            eps = torch.randn(n, latent, generator=ctx.generator).to(ctx.device)
            gen = G.decode(mean[yz] + torch.einsum("nij,nj->ni", chol[yz], eps), yz)
            # matching-aware fakes (Reed et al. 2016): real digits paired with a wrong class, and real digits
            # with uniform pixel noise, so that D scores "a clean digit of this class", not sharpness
            wrong = (y + torch.as_tensor(ctx.rng.integers(1, 10, n)).to(ctx.device)) % 10
            amp = torch.as_tensor(ctx.rng.uniform(0.05, 0.4, (n, 1, 1, 1)), dtype=x.dtype).to(ctx.device)
            noisy = (x + (torch.rand(x.shape, generator=ctx.generator).to(ctx.device) * 2 - 1) * amp).clamp(-1, 1)
        return x, y, torch.cat([rec, gen, x, noisy]), torch.cat([y, yz, wrong, y])

    def loss(self, model, batch, ctx):
        x, y, fake, yf = batch
        real, fake = F.relu(1 - model(x, y)).mean(), F.relu(1 + model(fake, yf)).mean()
        return real + fake, {"real": float(real.detach()), "fake": float(fake.detach())}

    def payload(self, model):
        return {"config": dict(model.config), "state": model.state_dict()}

    def load_shipped(self, device):
        from backend.apt.loading import frozen_network
        from backend.core.registry import load_checkpoint

        p, _ = load_checkpoint(self.name)
        return frozen_network(p["config"], p["state"], device)

    def evaluate(self, model, ctx):
        from backend.apt.attack_evaluation import card_number, evaluate_attacks
        from backend.apt.data import split_arrays
        from backend.apt.generator_quality import disc_scores
        from backend.apt.loading import CLASSIFIERS, load_classifier, make_models
        from backend.core.registry import load_checkpoint

        c, cpu = self.config, torch.device("cpu")
        D = model.to(cpu).eval().requires_grad_(False)
        p, _ = load_checkpoint("apt-generator")
        G, P = (load_frozen(p, k) for k in ("", "perceptual_"))
        stats = (p["class_mean"], p["class_cov"], p["class_dirs"], p["class_dir_std"])
        scores = disc_scores(D, G, stats, *split_arrays("test"), seed=0)
        nets = {name: load_classifier(name, cpu)[0] for name in CLASSIFIERS}
        result = evaluate_attacks(make_models(G, P, nets, stats, cpu, D=D), c)
        result["metrics"] = {**{k: card_number(v) for k, v in scores.items()}, **result["metrics"]}
        return result


def load_frozen(payload: dict, prefix: str):
    from backend.apt.loading import frozen_network

    return frozen_network(payload[f"{prefix}config"], payload[f"{prefix}state"], "cpu")


class APTFineTunedCNN(DigitClassifier):
    """The paper's robustness by fine-tuning: the shipped CNN fine-tuned on APT images of training digits
    (attacks on the CNN with the shipped generator and the card's settings) with their true labels, mixed
    with clean training digits. Evaluated against fresh APT attacks on the headline test digits."""

    name, short = "apt-cnn-apt", "cnn-apt"
    title = "APT-fine-tuned digit CNN (the paper's fine-tuning on attack samples)"
    config = {**DigitClassifier.config, "lr": 3e-4, "n_pool": 200, "pool_seed": 5, "apt_share": 0.5,
              "n_test_attacks": 100}
    default_steps = 300
    targets = {}

    def __init__(self, **overrides):
        super().__init__(**overrides)
        self.pool = None

    def build(self, ctx):
        from backend.apt.loading import load_classifier

        net = super().build(ctx)
        net.load_state_dict(load_classifier("cnn", "cpu")[0].state_dict())  # fine-tune the shipped CNN
        return net

    def on_phase_start(self, model, ctx):
        if self.pool is None:
            self.pool = apt_pool(self.config["n_pool"], self.config["pool_seed"])
        return None

    def batch(self, ctx):
        x, y = digit_batch(ctx, self.config["max_shift"])
        px, py = self.pool
        k = int(round(self.config["apt_share"] * len(x)))
        idx = torch.as_tensor(ctx.rng.integers(0, len(px), k))
        from backend.apt.data import shift_augment

        xa = shift_augment(px[idx], ctx.generator, self.config["max_shift"]).to(ctx.device)
        return torch.cat([x[k:], xa]), torch.cat([y[k:], py[idx].to(ctx.device)])

    def load_shipped(self, device):
        from backend.apt.loading import frozen_network
        from backend.core.registry import load_checkpoint

        p, _ = load_checkpoint(self.name)
        return frozen_network(p["config"], p["state"], device)

    def evaluate(self, model, ctx):
        from backend.apt.accuracy import accuracy
        from backend.apt.attack_evaluation import card_number, fine_tune_rows
        from backend.apt.data import split_arrays
        from backend.apt.loading import load_classifier

        cpu = torch.device("cpu")
        model = model.to(cpu).eval().requires_grad_(False)
        cnn = load_classifier("cnn", cpu)[0]
        x, y = split_arrays("test")
        acc, acc_cnn = accuracy(model, x, y), accuracy(cnn, x, y)
        rows, info = fine_tune_rows({"cnn": cnn, self.short: model}, self.config["n_test_attacks"])
        r = {row["classifier"]: row for row in rows}
        ft, base = r[self.short], r["cnn"]
        metrics = {"test_acc": acc, "test_acc_change_vs_cnn": acc - acc_cnn, "apt_fooled_kept": ft["fooled_and_kept"],
                   "apt_fooled": ft["fooling_rate"], "apt_ssim": ft["ssim"], "apt_steps": ft["steps"]}
        baselines = {"cnn_test_acc": acc_cnn, "cnn_apt_fooled_kept": base["fooled_and_kept"],
                     "cnn_apt_fooled": base["fooling_rate"], "cnn_apt_ssim": base["ssim"], "cnn_apt_steps": base["steps"]}
        targets = [{"metric": "test_acc_change_vs_cnn", "threshold": -0.01, "value": card_number(acc - acc_cnn)}]
        return {"metrics": {k: card_number(v) for k, v in metrics.items()},
                "baselines": {k: card_number(v) for k, v in baselines.items()}, "targets": targets,
                "headline": {"metric": "apt_fooled_kept", "label": "fresh APT attacks: fooled and kept (test digits)",
                             "value": card_number(ft["fooled_and_kept"]), "baseline": card_number(base["fooled_and_kept"]),
                             "baseline_label": "the CNN before fine-tuning"},
                "readout": (f"Clean accuracy on all {len(x)} test digits. {info} Pool: APT images of "
                            f"{self.config['n_pool']} training digits (seed {self.config['pool_seed']}) attacking "
                            "the CNN, true labels, half of each batch."),
                "limitations": [*self.limitations(),
                                "The attacks at test time are fresh APT runs against each classifier (a new generator "
                                "tuning per digit), not the training pool's images."],
                "evaluation": {"rows": rows}}


def apt_pool(n: int, seed: int):
    """APT images (tensors (k, 1, 32, 32) in [-1, 1]) of `n` training digits attacking the shipped CNN with
    the generator card's chosen settings, kept where the attack fooled the CNN, with their true labels."""
    import numpy as np

    from backend.apt.attack_evaluation import card_settings
    from backend.apt.attacks import attack
    from backend.apt.data import from_uint8, split_arrays, to_uint8

    x, y = split_arrays("train")
    idx = np.random.default_rng(seed).permutation(len(x))[:n]
    steps, chosen = card_settings()
    imgs, labels = [], []
    for i in idx:
        r = attack(to_uint8(x[i]), int(y[i]), classifier="cnn", steps=steps, edits=False, **chosen)
        if r.success:
            imgs.append(from_uint8(r.adversarial))
            labels.append(int(y[i]))
    if not imgs:
        raise RuntimeError("No APT attack on the pool's training digits fooled the CNN; nothing to fine-tune on.")
    return torch.as_tensor(np.stack(imgs))[:, None], torch.as_tensor(labels)
