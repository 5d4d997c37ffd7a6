"""The shipped APT models (generator G, perceptual net P, the three classifiers) and their evaluation detail."""

from __future__ import annotations

import contextlib
import contextvars
import threading
from dataclasses import dataclass, field

from backend.core.cache import cached

CLASSIFIERS = ["cnn", "mlp", "robust"]
CHECKPOINTS = {"generator": "apt-generator", "cnn": "apt-cnn", "mlp": "apt-mlp", "robust": "apt-robust",
               "discriminator": "apt-discriminator", "cnn-apt": "apt-cnn-apt"}
ATTACK_CARD = "apt-discriminator"  # the checkpoint whose card holds the attack evaluation
_IN_USE: contextvars.ContextVar = contextvars.ContextVar("apt_models_in_use", default=None)


@dataclass
class Models:
    generator: object                      # CVAE (decoder = G)
    perceptual: object                     # CNN P for the perceptual distance
    nets: dict                             # classifier name -> torch module
    classifiers: list                      # names, e.g. ["cnn", "mlp", "robust"]
    device: object
    class_mean: object                     # (10, latent) encoder-mean centroid per class
    class_dirs: object                     # (10, 3, latent) principal directions per class
    class_dir_std: object                  # (10, 3) spread along them
    class_chol: object                     # (10, latent, latent) Cholesky of the per-class covariance
    cards: dict = field(default_factory=dict)
    discriminator: object = None           # D of the cVAE-GAN (APT's realism term); None: no realism term
    lock: object = field(default_factory=threading.Lock)


def frozen_network(config: dict, state: dict, device="cpu"):
    """A network of `backend.apt.model` from its config and weights, in eval mode with gradients off."""
    from backend.apt.model import build

    m = build(config)
    m.load_state_dict(state)
    return m.to(device).eval().requires_grad_(False)


def class_cholesky(class_cov):
    """Cholesky factors of the per-class latent covariances (with a small ridge)."""
    import torch

    cov = class_cov.double() + 1e-4 * torch.eye(class_cov.shape[-1], dtype=torch.float64)
    return torch.linalg.cholesky(cov).float()


def load_classifier(name: str, device="cpu"):
    """A shipped classifier ("cnn", "mlp", "robust") as a frozen network, with its card."""
    from backend.core.registry import load_checkpoint

    payload, card = load_checkpoint(CHECKPOINTS[name])
    return frozen_network(payload["config"], payload["state"], device), card


def make_models(G, P, nets: dict, stats, device, cards: dict | None = None, D=None) -> Models:
    """Models from networks and the generator's per-class latent statistics (mean, cov, dirs, dir std)."""
    mean, cov, dirs, stds = stats
    return Models(G, P, nets, list(nets), device, mean.to(device), dirs.to(device), stds.to(device),
                  class_cholesky(cov).to(device), cards or {}, D)


@cached
def _load(device_str: str) -> Models:
    import torch

    from backend.core.registry import CheckpointError, load_checkpoint

    dev = torch.device(device_str)
    gp, gcard = load_checkpoint(CHECKPOINTS["generator"])
    G = frozen_network(gp["config"], gp["state"], dev)
    P = frozen_network(gp["perceptual_config"], gp["perceptual_state"], dev)
    nets, cards = {}, {"generator": gcard}
    for name in CLASSIFIERS:
        nets[name], cards[name] = load_classifier(name, dev)
    try:
        dp, cards["discriminator"] = load_checkpoint(CHECKPOINTS["discriminator"])
        D = frozen_network(dp["config"], dp["state"], dev)
    except CheckpointError:  # not trained yet: APT runs without its realism term
        D = None
    stats = (gp["class_mean"], gp["class_cov"], gp["class_dirs"], gp["class_dir_std"])
    return make_models(G, P, nets, stats, dev, cards, D)


def load_models(device: str | None = None) -> Models:
    """The generator, perceptual net and classifiers (cached once per process and device); inside
    `models_in_use(models)`, those models instead."""
    from backend.core.device import get_device

    return _IN_USE.get() or _load(str(get_device(device)))


@contextlib.contextmanager
def models_in_use(models: Models):
    """Run the APT functions on other models than the shipped ones (a recipe evaluating the weights it
    has just trained); the setting is local to the calling thread/context."""
    token = _IN_USE.set(models)
    try:
        yield models
    finally:
        _IN_USE.reset(token)


@cached
def load_evaluation(name: str = ATTACK_CARD) -> dict:
    """The detail of a checkpoint's held-out evaluation (its payload's "evaluation" entry; {} when absent).
    For apt-discriminator: the test table ("attacks") and the validation grid that chose the settings
    ("selection")."""
    from backend.core.registry import load_checkpoint

    if name not in CHECKPOINTS.values():
        raise ValueError(f"Unknown APT checkpoint {name!r}; choose one of {', '.join(CHECKPOINTS.values())}.")
    payload, _ = load_checkpoint(name)
    return payload.get("evaluation") or {}
