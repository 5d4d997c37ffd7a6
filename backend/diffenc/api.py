"""The DiffEnc page's public functions: models, likelihoods, encodings, samples, curves and OOD scores."""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from backend.core.cache import cached

MODELS = {"vdm": "VDM", "vdm-matched": "VDM (size-matched)", "diffenc": "DiffEnc"}


@dataclass
class Model:
    """A loaded model: `key` ("vdm" | "vdm-matched" | "diffenc"), its checkpoint name, module and card."""

    key: str
    name: str
    net: object
    card: dict
    evaluation: dict = field(default_factory=dict)

    @property
    def label(self) -> str:
        return MODELS[self.key]

    @property
    def n_params(self) -> int:
        from backend.diffenc.model import n_params

        return n_params(self.net)


@dataclass
class Bpd:
    """Per-image bits/dim (mean over Monte Carlo draws) and its terms (diffusion, latent, recon), each (N,)."""

    bpd: np.ndarray
    terms: dict
    draws: np.ndarray  # (repeats, N)
    repeats: int
    seed: int


@dataclass
class Encoding:
    """DiffEnc's encoder at times t: arrays (T, N, 14, 14) in [-1, 1] (x itself is (N, 14, 14))."""

    t: np.ndarray
    log_snr: np.ndarray
    x: np.ndarray
    x_phi: np.ndarray
    y: np.ndarray
    trivial: np.ndarray  # alpha_t^2 x, the encoder at initialisation (y = 0)


@dataclass
class Samples:
    images: np.ndarray  # (n, 14, 14) uint8
    trajectory_t: np.ndarray  # (K,)
    trajectory: np.ndarray  # (K, n, 14, 14) z_t


def _check_key(name: str) -> str:
    if name not in MODELS:
        raise ValueError(f"Unknown model {name!r}: choose one of {', '.join(MODELS)}.")
    return name


@cached
def load_model(name: str = "diffenc") -> Model:
    """The shipped seed-0 model `name` ("vdm", "vdm-matched" or "diffenc") with its card."""

    from backend.core.registry import CHECKPOINT_DIR, load_checkpoint
    from backend.diffenc.metrics import load_weights
    from backend.diffenc.train import MODEL_NAMES

    ckpt = MODEL_NAMES[_check_key(name)]
    directory = Path(os.environ.get("DIFFENC_CHECKPOINTS") or CHECKPOINT_DIR)
    payload, card = load_checkpoint(ckpt, map_location="cpu", directory=directory)
    net = load_weights(ckpt, directory)
    return Model(name, ckpt, net, card, payload.get("evaluation", {}))


def ready() -> None:
    """Raises ValueError naming the command to run when a shipped model is missing (the page shows it)."""
    for key in MODELS:
        load_model(key)


def _model(model) -> Model:
    return model if isinstance(model, Model) else load_model(model)


def as_images(images) -> np.ndarray:
    """(N, 14, 14) uint8 grey digits; a single (14, 14) digit becomes N = 1."""
    a = np.asarray(images)
    if a.ndim == 2:
        a = a[None]
    if a.ndim != 3 or a.shape[1:] != (14, 14):
        raise ValueError(f"Digits must be 14x14 grey images (got shape {a.shape}); use to_digit() to resize a drawing.")
    if a.dtype != np.uint8:
        if a.min() < 0 or a.max() > 255:
            raise ValueError("Pixel values must lie in 0-255.")
        a = np.rint(a).astype(np.uint8)
    return a


def bpd(images, model="diffenc", repeats: int = 8, seed: int = 0, progress=None) -> Bpd:
    """Bits/dim of each image under `model`: the ELBO with `repeats` Monte Carlo draws of (t, noise); the draws
    depend only on (seed, image index), so two models scored with the same seed share them."""
    import torch

    from backend.diffenc.metrics import bpd_terms

    if not 1 <= int(repeats) <= 256:
        raise ValueError("Use between 1 and 256 Monte Carlo repeats.")
    imgs, m = as_images(images), _model(model)
    with torch.no_grad():
        r = bpd_terms(m.net, imgs, int(repeats), int(seed), progress=progress)
    return Bpd(r["bpd"], {k: r[k] for k in ("diffusion", "latent", "recon")}, r["bpd_draws"], int(repeats), int(seed))


def encode(images, t) -> Encoding:
    """DiffEnc's encoding x_phi(x, t) = x + sigma_t^2 (y - x) of each image at each time t in [0, 1]."""
    import torch

    from backend.diffenc.model import gamma_of, to_unit

    imgs = as_images(images)
    ts = np.atleast_1d(np.asarray(t, np.float64))
    if ts.min() < 0 or ts.max() > 1:
        raise ValueError("Times t must lie in [0, 1].")
    net = load_model("diffenc").net
    x = to_unit(torch.from_numpy(imgs)[:, None])
    xs, ys, triv = [], [], []
    with torch.no_grad():
        for tt in ts:
            g = torch.full((len(x),), float(gamma_of(tt)))
            x_phi, y = net.encode(x, g)
            xs.append(x_phi[:, 0].numpy())
            ys.append(y[:, 0].numpy())
            triv.append((torch.sigmoid(-g)[:, None, None] * x[:, 0]).numpy())
    g = gamma_of(ts)
    return Encoding(ts, -g, x[:, 0].numpy(), np.stack(xs), np.stack(ys), np.stack(triv))


def sample(n: int = 16, model="diffenc", steps: int = 200, seed: int = 0, trajectory_points: int = 8) -> Samples:
    """`n` digits from `model` by ancestral sampling over `steps` steps; the start noise and every step's noise
    depend only on `seed`, so two models sampled with the same seed see the same noise."""
    import torch

    from backend.diffenc.model import sample as run

    if not 1 <= int(n) <= 256:
        raise ValueError("Draw between 1 and 256 samples.")
    if not 2 <= int(steps) <= 2000:
        raise ValueError("Use between 2 and 2000 sampling steps.")
    m = _model(model)
    every = max(1, int(steps) // max(1, int(trajectory_points)))
    imgs, snaps = run(m.net, int(n), int(steps), torch.Generator().manual_seed(int(seed)), trajectory_every=every)
    return Samples(imgs, np.array([s[0] for s in snaps]), np.stack([s[1][:, 0].numpy() for s in snaps]))


def loss_curves() -> dict:
    """The diffusion loss (bits/dim) against t on 100 test digits, per model, from the shipped evaluations."""
    out = {}
    for key in MODELS:
        ev = load_model(key).evaluation
        if "loss_vs_t" in ev:
            out[key] = (np.asarray(ev["t_grid"]), np.asarray(ev["loss_vs_t"]))
    return out


def comparison() -> dict:
    """Cards' figures side by side: test bpd, terms, baselines, parameters, and the paired gaps."""
    rows = {}
    for key in MODELS:
        m = load_model(key)
        rows[key] = {"label": m.label, "params": m.n_params, "steps": m.card.get("steps"),
                     **{k: m.card["metrics"].get(k) for k in ("test_bpd", "test_bpd_se", "terms_bpd")}}
    card = load_model("diffenc").card
    return {"rows": rows, "baselines": card["baselines"], "metrics": card["metrics"],
            "comparison": load_model("diffenc").evaluation.get("comparison"), "readout": card.get("readout", "")}


def ood_bpd(repeats: int = 4, seed: int = 0, n: int = 64, progress=None) -> dict:
    """Mean bpd of MNIST test digits, scikit-learn's digits and font-rendered digits under each model."""
    from backend.core.progress import as_progress
    from backend.diffenc.data import font_digits, load_digits, sklearn_digits

    progress = as_progress(progress)
    sets = {"MNIST test": load_digits()["test"][0][:n], "scikit-learn digits": sklearn_digits(n, seed),
            "font digits": font_digits()}
    out, total, done = {}, len(sets) * len(MODELS), 0
    for key in MODELS:
        for label, imgs in sets.items():
            b = bpd(imgs, key, repeats, seed).bpd
            out[(key, label)] = (float(b.mean()), float(b.std(ddof=1) / math.sqrt(len(b))))
            done += 1
            progress.update(done, total, f"{MODELS[key]} on {label}")
    return {"table": out, "examples": {k: v[:8] for k, v in sets.items()}}


def to_u8(a: np.ndarray) -> np.ndarray:
    """Values in [-1, 1] as grey levels 0-255."""
    return np.clip(np.rint((np.asarray(a) + 1) * 127.5), 0, 255).astype(np.uint8)


@dataclass
class EncoderView:
    """What the page shows for one digit at one t: uint8 images x, x_phi, y, the amplified x_phi - alpha^2 x
    (the learned part; 0 at initialisation, shown around mid-grey) and a strip of x_phi over `strip_t`."""

    t: float
    log_snr: float
    x: np.ndarray
    x_phi: np.ndarray
    y: np.ndarray
    diff: np.ndarray
    gain: float
    strip_t: np.ndarray
    strip: np.ndarray
    strip_trivial: np.ndarray


def encoder_view(image, t: float, strip_t=tuple(np.linspace(0, 1, 9).round(3))) -> EncoderView:
    """The encoder on one digit at time t, plus x_phi over a strip of times (one batched call)."""
    ts = np.concatenate([[float(t)], np.asarray(strip_t, np.float64)])
    e = encode(as_images(image)[:1], ts)
    learned = e.x_phi[0, 0] - e.trivial[0, 0]
    gain = float(0.9 / max(np.abs(learned).max(), 1e-6))
    return EncoderView(float(t), float(e.log_snr[0]), to_u8(e.x[0]), to_u8(e.x_phi[0, 0]), to_u8(e.y[0, 0]),
                       to_u8(np.clip(learned * gain, -1, 1)), gain, e.t[1:], to_u8(e.x_phi[1:, 0]),
                       to_u8(e.trivial[1:, 0]))


def samples_all(n: int = 16, steps: int = 100, seed: int = 0, trajectory_points: int = 8) -> dict:
    """`sample` for every model with the same seed (the same start noise and step noise): key -> Samples."""
    return {key: sample(n, key, steps, seed, trajectory_points) for key in MODELS}


def bpd_all(images, repeats: int = 8, seed: int = 0) -> dict:
    """Per-image bpd of `images` under every model with the same Monte Carlo draws: key -> Bpd."""
    return {key: bpd(images, key, repeats, seed) for key in MODELS}
