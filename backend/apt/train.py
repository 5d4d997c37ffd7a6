"""`python -m backend.train apt`: the APT page's six checkpoints as recipes on `backend.core.training`.

- `apt-cnn`, `apt-mlp`: digit classifiers (cross-entropy, ±2 px shift augmentation).
- `apt-robust`: the CNN with PGD adversarial training (Madry et al. 2018): half of each batch is replaced
  by PGD-7 examples at eps 0.1 ([0, 1] units).
- `apt-generator`: the perceptual net P (a CNN trained like apt-cnn from another seed; never attacked),
  then the class-conditional VAE whose decoder is the generator G that APT tunes (summed-pixel MSE + KL).
  An optional class-consistency term (`class_weight` > 0; off in the shipped model) makes the frozen
  apt-cnn recognise prior samples G(z, y) as y. Its evaluation measures the generator's samples.
- `apt-discriminator`, `apt-cnn-apt` (backend/apt/train_attacks.py): the realism discriminator with the
  attack evaluation, and the CNN fine-tuned on APT images.

The group `apt` trains them in this order (each later model uses the earlier ones).
"""

from __future__ import annotations

from functools import lru_cache

import torch
import torch.nn.functional as F

from backend.core.training import Phase, Recipe

PAPER = ("Christensen, Snæbjarnarson, Dittadi, Belongie, Benaim, Assessing Neural Network Robustness via "
         "Adversarial Pivotal Tuning, WACV 2024 (arXiv:2211.09782)")
DATA = ("scikit-learn load_digits (1,797 8×8 scans), /16, bilinear to 32×32, [-1, 1]; stratified split "
        "random_state=0: 1,347 train / 450 test")
EVAL_CONFIG = {"pgd_eval_eps": 0.1, "pgd_eval_steps": 40, "pgd_eval_seed": 777, "logreg_max_iter": 3000}
# what makes `python -m backend.train apt --steps 20` and its evaluation take seconds (any recipe of the group)
SMOKE = {"adv_steps": 2, "pgd_eval_steps": 2, "logreg_max_iter": 20, "n_gen_samples": 100, "n_eval": 2, "n_val": 2,
         "grid": {"adv_weight": [0.1], "realism_weight": [0.0, 0.3], "lr": [3e-4]}, "steps_grid": [3],
         "pgd_eps": [0.1], "apt_steps": 5, "inv_steps": 5, "n_pool": 4, "n_test_attacks": 2}


def digit_batch(ctx, max_shift: int):
    """A batch of training digits (ctx.rng picks them, ctx.generator shifts them): (x, y) on ctx.device."""
    from backend.apt.data import shift_augment, split_arrays

    x, y = split_arrays("train")
    idx = ctx.rng.integers(0, len(x), ctx.batch_size)
    xb = shift_augment(torch.as_tensor(x[idx])[:, None], ctx.generator, max_shift)
    return xb.to(ctx.device), torch.as_tensor(y[idx]).to(ctx.device)


def classifier_loss(net, x, y, adv_eps: float = 0.0, adv_steps: int = 7, seed: int = 0):
    """Cross-entropy; with `adv_eps` > 0 ([0, 1] units) the first half of the batch is replaced by PGD
    examples against the current weights (step 2.5·eps/adv_steps, random start)."""
    from backend.apt.tuning import pgd_tensor

    if adv_eps > 0:
        h = len(x) // 2
        x = x.clone()
        x[:h] = pgd_tensor(net, x[:h], y[:h], eps=2 * adv_eps, steps=adv_steps, seed=seed)
    return F.cross_entropy(net(x), y)


@lru_cache(maxsize=4)
def logreg_accuracy(max_iter: int) -> float:
    """Test accuracy of logistic regression on the raw 32×32 pixels (the classifiers' baseline)."""
    import warnings

    from sklearn.exceptions import ConvergenceWarning
    from sklearn.linear_model import LogisticRegression

    from backend.apt.data import split_arrays

    (xtr, ytr), (xte, yte) = split_arrays("train"), split_arrays("test")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)  # only a smoke run's tiny max_iter stops early
        model = LogisticRegression(max_iter=max_iter).fit(xtr.reshape(len(xtr), -1), ytr)
    return float(model.score(xte.reshape(len(xte), -1), yte))


def classifier_payload(net, short: str) -> dict:
    return {"config": dict(net.config), "state": net.state_dict(), "name": short}


def net_config(config: dict) -> dict:
    keys = {"cnn": ("width", "n_classes"), "mlp": ("hidden", "n_classes", "dropout")}[config["arch"]]
    return {"arch": config["arch"], **{k: config[k] for k in keys}}


class DigitClassifier(Recipe):
    """A classifier of the 32×32 digits; `adv_eps` > 0 trains it adversarially."""

    name, short = "apt-cnn", "cnn"
    title = "APT target classifier: digit CNN"
    paper, data = PAPER, DATA
    config = {"arch": "cnn", "width": 16, "n_classes": 10, "batch": 64, "lr": 1e-3, "max_shift": 2, "adv_eps": 0.0,
              "adv_steps": 7, **EVAL_CONFIG}
    default_steps = 800
    targets = {"test_acc": 0.97}
    evaluate_no_grad = False  # PGD needs gradients
    smoke = SMOKE

    def build(self, ctx):
        from backend.apt.model import build

        return build(net_config(self.config))

    def phases(self, steps):
        return [Phase("train", steps, batch=self.config["batch"], lr=self.config["lr"])]

    def batch(self, ctx):
        return digit_batch(ctx, self.config["max_shift"])

    def loss(self, model, batch, ctx):
        c = self.config
        return classifier_loss(model, *batch, c["adv_eps"], c["adv_steps"],
                               seed=(ctx.seed * 100003 + ctx.step) * max(1, ctx.world) + ctx.rank)

    def payload(self, model):
        return classifier_payload(model, self.short)

    def load_shipped(self, device):
        from backend.apt.loading import load_classifier

        return load_classifier(self.short, device)[0]

    def evaluate(self, model, ctx):
        from backend.apt.accuracy import accuracy, pgd_accuracy
        from backend.apt.data import split_arrays

        c, dev = self.config, ctx.device
        x, y = split_arrays("test")
        eps, tag = c["pgd_eval_eps"], f"pgd40_acc_eps{c['pgd_eval_eps']}"
        metrics = {"test_acc": accuracy(model, x, y, dev),
                   tag: pgd_accuracy(model, x, y, eps, steps=c["pgd_eval_steps"], device=dev, seed=c["pgd_eval_seed"])}
        baselines = {"logreg_pixels_test_acc": logreg_accuracy(c["logreg_max_iter"])}
        if self.short != "cnn":
            baselines[f"cnn_{tag}"] = self._plain_cnn_pgd_accuracy(x, y, dev)
        return {"metrics": metrics, "baselines": baselines,
                "targets": [{"metric": k, "threshold": v, "value": metrics[k]} for k, v in self.targets.items()],
                "headline": self.headline(metrics, baselines),
                "readout": (f"argmax of the logits on all {len(x)} test digits; PGD: {c['pgd_eval_steps']} steps, "
                            f"L∞ eps {eps} ([0, 1] units), step 2.5·eps/steps, random start (seed "
                            f"{c['pgd_eval_seed']})"),
                "limitations": self.limitations()}

    def _plain_cnn_pgd_accuracy(self, x, y, dev):
        from backend.apt.accuracy import pgd_accuracy
        from backend.apt.loading import load_classifier
        from backend.core.registry import CheckpointError

        c = self.config
        try:
            cnn = load_classifier("cnn", dev)[0]
        except CheckpointError:  # apt-cnn not trained yet: no baseline
            return None
        return pgd_accuracy(cnn, x, y, c["pgd_eval_eps"], steps=c["pgd_eval_steps"], device=dev,
                            seed=c["pgd_eval_seed"])

    def headline(self, metrics, baselines):
        return {"metric": "test_acc", "label": f"{self.short.upper()} test accuracy", "value": metrics["test_acc"],
                "baseline": baselines["logreg_pixels_test_acc"], "baseline_label": "logistic regression on pixels"}

    def limitations(self):
        return ["Trained and tested on 8×8 scans upsampled to 32×32: the images have 64 true degrees of "
                "freedom, so pixel-space attacks can use detail the data never hold.",
                "450 test digits: accuracies carry about ±1 % sampling error."]


class DigitMLP(DigitClassifier):
    name, short = "apt-mlp", "mlp"
    title = "APT transfer classifier: digit MLP"
    config = {"arch": "mlp", "hidden": [512, 256], "n_classes": 10, "dropout": 0.2, "batch": 64, "lr": 1e-3,
              "max_shift": 2, "adv_eps": 0.0, "adv_steps": 7, **EVAL_CONFIG}
    default_steps = 1200


class RobustCNN(DigitClassifier):
    name, short = "apt-robust", "robust"
    title = "APT robust classifier: PGD-trained digit CNN"
    config = {**DigitClassifier.config, "adv_eps": 0.1}
    default_steps = 600
    targets = {"test_acc": 0.95, "pgd40_acc_eps0.1": 0.6}

    def headline(self, metrics, baselines):
        k = f"pgd40_acc_eps{self.config['pgd_eval_eps']}"
        return {"metric": k, "label": f"accuracy under PGD-40 at eps {self.config['pgd_eval_eps']}",
                "value": metrics[k], "baseline": baselines.get(f"cnn_{k}"), "baseline_label": "the plain CNN"}

    def limitations(self):
        return [*super().limitations(),
                "Madry et al. train MNIST models at eps 0.3; eps 0.1 is used here because the smooth upsampled "
                "scans change class at smaller pixel budgets."]


class GeneratorRecipe(Recipe):
    """Phase "perceptual" trains P (G frozen), phase "generator" trains the cVAE (P frozen)."""

    name = "apt-generator"
    title = "APT generator: class-conditional VAE decoder, with the perceptual net P"
    paper, data = PAPER, DATA
    config = {"latent": 16, "width": 32, "beta": 1.0, "class_weight": 0.0, "perceptual_width": 16,
              "perceptual_share": 0.4, "batch": 64, "lr": 1e-3, "max_shift": 1, "perceptual_max_shift": 2,
              "n_gen_samples": 1000, "sample_seed": 0}
    default_steps = 2000
    evaluate_no_grad = False  # the attacks need gradients
    smoke = SMOKE

    def __init__(self, **overrides):
        super().__init__(**overrides)
        self.judge = None  # the frozen apt-cnn of the class-consistency term

    def build(self, ctx):
        from backend.apt.model import CNN, CVAE

        c = self.config
        return torch.nn.ModuleDict({"generator": CVAE(c["latent"], width=c["width"]),
                                    "perceptual": CNN(width=c["perceptual_width"])})

    def phases(self, steps):
        c = self.config
        k = max(1, int(round(c["perceptual_share"] * steps)))
        return [Phase("perceptual", k, batch=c["batch"], lr=c["lr"], frozen=("generator",)),
                Phase("generator", max(1, steps - k), batch=c["batch"], lr=c["lr"], frozen=("perceptual",),
                      weights={"kl": c["beta"], "class": c["class_weight"]})]

    def on_phase_start(self, model, ctx):
        if ctx.phase.name == "generator" and ctx.phase.weights.get("class", 0) > 0 and self.judge is None:
            from backend.apt.loading import load_classifier

            self.judge = load_classifier("cnn", ctx.device)[0]
        return None

    def batch(self, ctx):
        if ctx.phase.name == "perceptual":
            return digit_batch(ctx, self.config["perceptual_max_shift"])
        x, y = digit_batch(ctx, self.config["max_shift"])
        n, latent = len(x), self.config["latent"]
        noise = torch.randn(n, latent, generator=ctx.generator).to(ctx.device)
        z = torch.randn(n, latent, generator=ctx.generator).to(ctx.device)
        yz = torch.as_tensor(ctx.rng.integers(0, 10, n)).to(ctx.device)
        return x, y, noise, z, yz

    def loss(self, model, batch, ctx):
        if ctx.phase.name == "perceptual":
            return classifier_loss(model["perceptual"], *batch)
        G, w = model["generator"], ctx.phase.weights
        x, y, noise, z, yz = batch
        mu, logvar = G.encode(x, y)
        recon = (G.decode(mu + noise * (0.5 * logvar).exp(), y) - x).pow(2).sum((1, 2, 3)).mean()
        kl = (-0.5 * (1 + logvar - mu.pow(2) - logvar.exp()).sum(1)).mean()
        loss, logs = recon + w["kl"] * kl, {"recon": float(recon.detach()), "kl": float(kl.detach())}
        if w.get("class", 0) > 0:
            class_term = F.cross_entropy(self.judge(G.decode(z, yz)), yz)
            loss, logs["class"] = loss + w["class"] * class_term, float(class_term.detach())
        return loss, logs

    def payload(self, model):
        from backend.apt.data import split_arrays
        from backend.apt.generator_quality import latent_stats

        G, P = model["generator"], model["perceptual"]
        mean, cov, dirs, stds = latent_stats(G, *split_arrays("train"), device=next(G.parameters()).device)
        return {"config": dict(G.config), "state": G.state_dict(), "perceptual_config": dict(P.config),
                "perceptual_state": P.state_dict(), "class_mean": mean, "class_cov": cov, "class_dirs": dirs,
                "class_dir_std": stds}

    def load_shipped(self, device):
        from backend.apt.loading import frozen_network
        from backend.core.registry import load_checkpoint

        p, _ = load_checkpoint(self.name)
        return torch.nn.ModuleDict({"generator": frozen_network(p["config"], p["state"], device),
                                    "perceptual": frozen_network(p["perceptual_config"], p["perceptual_state"],
                                                                 device)})

    def evaluate(self, model, ctx):
        from backend.apt.accuracy import accuracy
        from backend.apt.attack_evaluation import card_number
        from backend.apt.data import split_arrays
        from backend.apt.generator_quality import generator_quality, latent_stats
        from backend.apt.loading import load_classifier

        c, cpu = self.config, torch.device("cpu")
        G, P = (model[k].to(cpu).eval().requires_grad_(False) for k in ("generator", "perceptual"))
        (x_train, y_train), (x_test, y_test) = split_arrays("train"), split_arrays("test")
        cnn, mlp = (load_classifier(name, cpu)[0] for name in ("cnn", "mlp"))
        quality = generator_quality(G, cnn, mlp, latent_stats(G, x_train, y_train), x_train, x_test, y_test,
                                    seed=c["sample_seed"], n=c["n_gen_samples"])
        quality["perceptual_net_test_acc"] = accuracy(P, x_test, y_test)
        quality = {k: card_number(v) for k, v in quality.items()}
        return {"metrics": quality,
                "baselines": {"fd_cnn_features_blurred_test": quality["fd_cnn_features_blurred_test"],
                              "fd_cnn_features_train_real": quality["fd_cnn_features_train_real"],
                              "gen_class_acc_chance": 0.1},
                "targets": [{"metric": "gen_class_acc_cnn", "threshold": 0.9, "value": quality["gen_class_acc_cnn"]}],
                "headline": {"metric": "gen_class_acc_cnn", "label": "the CNN reads the generator's samples as their class",
                             "value": quality["gen_class_acc_cnn"], "baseline": 0.1, "baseline_label": "chance"},
                "readout": (f"{c['n_gen_samples']} samples from the per-class Gaussians of the training digits' encoder "
                            "means (seed "f"{c['sample_seed']} + 12345), classified by apt-cnn and apt-mlp; encoder "
                            "reconstruction and Fréchet distances (CNN features) on the 450 test digits. The attack "
                            "evaluation is on the apt-discriminator card (it needs every APT model)."),
                "limitations": ["The generator is a small cVAE decoder trained on 8×8 scans upsampled to 32×32, not "
                                "StyleGAN-XL; it is not trained adversarially (its discriminator, apt-discriminator, "
                                "is trained afterwards against its frozen outputs).",
                                "The perceptual net P is a project-trained digit CNN, not LPIPS."]}


from backend.apt.train_attacks import APTFineTunedCNN, DiscriminatorRecipe  # noqa: E402  (they build on the above)

RECIPES = {"apt-cnn": DigitClassifier, "apt-mlp": DigitMLP, "apt-robust": RobustCNN,
           "apt-generator": GeneratorRecipe, "apt-discriminator": DiscriminatorRecipe, "apt-cnn-apt": APTFineTunedCNN}
GROUPS = {"apt": ["apt-cnn", "apt-mlp", "apt-robust", "apt-generator", "apt-discriminator", "apt-cnn-apt"]}
