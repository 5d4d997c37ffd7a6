"""One zoo member as a recipe of the one training loop (`backend.core.training.fit`), in memory.

A member's config: `arch` (logistic, MLPs, CNNs), `aug` (none, affine, noise, contrast, randaug, mixup),
`epochs`, `lr`, `shots` (10 or 100 per class, or 0 for all), `train_domain` (mnist, uci, fonts) and `transfer`
(none; head: a fonts-pretrained network with only its head fine-tuned; full: all of it fine-tuned).
Same config and seed -> the same weights on the same device (the loop seeds data order, initialisation and
augmentation draws).
"""

from __future__ import annotations

import math

import numpy as np

from backend.core.recipe import Phase, Recipe
from backend.robustness import data
from backend.robustness.model import ARCHS, AUGS, augment, build

BATCH = 64
MIN_STEPS = 20
TRANSFER = ("none", "head", "full")
SHOTS = (10, 100, 0)  # 0: all
# the pretraining every transfer member starts from: its arch, trained on printed fonts
PRETRAIN = {"aug": "affine", "epochs": 6, "lr": 3e-3, "shots": 0, "train_domain": "fonts", "transfer": "none"}
KEYS = ("arch", "aug", "epochs", "lr", "shots", "train_domain", "transfer")


def check_config(config: dict) -> dict:
    """A complete, valid member config (ValueError names the bad entry)."""
    c = {"arch": "cnn-small", "aug": "none", "epochs": 5, "lr": 3e-3, "shots": 0, "train_domain": "mnist",
         "transfer": "none", **{k: v for k, v in config.items() if k in KEYS}}
    if c["arch"] not in ARCHS:
        raise ValueError(f"Unknown architecture {c['arch']!r}; choose one of {', '.join(ARCHS)}.")
    if c["aug"] not in AUGS:
        raise ValueError(f"Unknown augmentation {c['aug']!r}; choose one of {', '.join(AUGS)}.")
    if c["train_domain"] not in data.NATURAL:
        raise ValueError(f"Unknown training domain {c['train_domain']!r}; choose one of {', '.join(data.NATURAL)}.")
    if c["transfer"] not in TRANSFER:
        raise ValueError(f"Unknown transfer mode {c['transfer']!r}; choose one of {', '.join(TRANSFER)}.")
    if c["transfer"] != "none" and (c["arch"] == "logistic" or c["train_domain"] == "fonts"):
        raise ValueError("Transfer starts from a fonts-pretrained network: use an MLP or CNN and a training "
                         "domain other than fonts.")
    if int(c["shots"]) not in SHOTS:
        raise ValueError("Shots must be 10 or 100 per class, or 0 for all training images.")
    if not 1 <= int(c["epochs"]) <= 100:
        raise ValueError("Epochs must be between 1 and 100.")
    if not 1e-5 <= float(c["lr"]) <= 1.0:
        raise ValueError("The learning rate must be between 1e-5 and 1.")
    c["epochs"], c["lr"], c["shots"] = int(c["epochs"]), float(c["lr"]), int(c["shots"])
    return c


def member_id(config: dict, seed: int) -> str:
    c = check_config(config)
    shots = "all" if c["shots"] == 0 else f"{c['shots']}shot"
    tr = "" if c["transfer"] == "none" else f"-ft{c['transfer']}"
    return f"{c['train_domain']}-{c['arch']}-{c['aug']}-e{c['epochs']}-lr{c['lr']:g}-{shots}{tr}-s{seed}"


def training_set(config: dict, seed: int) -> tuple[np.ndarray, np.ndarray]:
    c = check_config(config)
    x, y = data.load(c["train_domain"], "train")
    idx = data.subset(y, c["shots"] or None, seed)
    return x[idx], y[idx]


def n_steps(config: dict, n_train: int) -> int:
    return max(MIN_STEPS, int(config["epochs"]) * math.ceil(n_train / BATCH))


class MemberRecipe(Recipe):
    """One small classifier of the zoo (never written to disk by itself: `fit` keeps it in memory)."""

    name = "robustness-member"
    title = "Robustness zoo member"
    default_steps = 100
    log_every = 10_000

    def __init__(self, pretrained: dict | None = None, **config):
        super().__init__(**check_config(config))
        self.pretrained = pretrained
        if self.config["transfer"] != "none" and pretrained is None:
            raise ValueError("A transfer member needs the fonts-pretrained weights of its architecture.")
        self._data = None

    def steps(self, seed: int) -> int:
        return n_steps(self.config, len(training_set(self.config, seed)[1]))

    def build(self, ctx):
        net = build(self.config["arch"])
        if self.config["transfer"] != "none":
            net.load_state_dict(self.pretrained)
            if self.config["transfer"] == "head":
                net.head.reset_parameters()  # a fresh head, seeded like any initialisation
        return net

    def phases(self, steps: int) -> list[Phase]:
        frozen = ("features",) if self.config["transfer"] == "head" else ()
        return [Phase("fit", steps, batch=BATCH, lr=self.config["lr"], warmup=min(10, steps // 5),
                      final_lr_frac=0.05, frozen=frozen)]

    def batch(self, ctx):
        import torch

        if self._data is None:
            x, y = training_set(self.config, ctx.seed)
            self._data = (torch.as_tensor(x)[:, None], torch.as_tensor(y))
        x, y = self._data
        idx = torch.as_tensor(ctx.rng.integers(0, len(y), min(BATCH, len(y))))
        return augment(x[idx], y[idx], self.config["aug"], ctx.generator)

    def loss(self, model, batch, ctx):
        import torch.nn.functional as F

        x, target = batch
        logits = model(x)
        if target.dtype.is_floating_point:  # mixup's soft targets
            return -(target * F.log_softmax(logits, -1)).sum(-1).mean()
        return F.cross_entropy(logits, target)


def fit_member(config: dict, seed: int, pretrained: dict | None = None, progress=None, device="cpu"):
    """Train one member in memory; returns (model in eval mode, wall seconds, steps)."""
    from backend.core.training import fit

    recipe = MemberRecipe(pretrained=pretrained, **config)
    steps = recipe.steps(seed)
    fitted = fit(recipe, steps=steps, device=device, seed=seed, progress=progress)
    return fitted.model.eval(), fitted.wall_time_s, steps
