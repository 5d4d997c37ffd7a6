"""Diffusion process, RaMViD's random conditioning masks, the masked loss and the DDIM sampler.

Kept apart from the network (as improved-diffusion separates `gaussian_diffusion.py` from `unet.py`).

- Schedule: continuous cosine, alpha_t = cos(pi t / 2), sigma_t = sin(pi t / 2), t in [0, 1]; the net
  predicts v = alpha * eps - sigma * x0 (RaMViD uses eps with a linear schedule, which stays below the
  copy baselines at CPU budgets; see ../shared/notes/video.md section 7).
- Masks (RaMViD section 3), `mask_mix="ramvid"` (default): with probability p_uncond a clip has no given
  frame, otherwise a uniform random number of given frames (1 ... T-1) at uniform random positions.
  Given pixels enter the net clean, and the loss covers generated pixels only. `mask_mix="tasks"`
  (not in the paper) draws 40 % of conditioned masks that way and 60 % as strides, prefixes and both
  ends. Extension: a share p_region of masks hides a random rectangle in some frames (mask channel).
- Sampling: given pixels are written back, clean, before every network evaluation; DDIM with eta and
  optional RePaint-style resampling.
"""

from __future__ import annotations

import math

import numpy as np
import torch

T_MIN, T_MAX = 1e-3, 1.0


def alpha_sigma(t: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    return torch.cos(0.5 * math.pi * t), torch.sin(0.5 * math.pi * t)


def _bshape(v: torch.Tensor) -> torch.Tensor:
    return v.view(-1, 1, 1, 1, 1)


# ---------------------------------------------------------------- masks
MASK_KINDS = ("uncond", "random", "stride", "prefix", "ends", "region")


def frame_pattern(kind: str, T: int, rng: np.random.Generator) -> np.ndarray:
    """Bool (T,) of GIVEN frames for one training clip (never all given; empty only for 'uncond')."""
    given = np.zeros(T, bool)
    if kind == "uncond":
        return given
    if kind == "random":  # RaMViD: k ~ U{1..K}, K = T-1, distinct frames uniformly
        k = int(rng.integers(1, T))
        given[rng.choice(T, k, replace=False)] = True
    elif kind == "stride":
        s = int(rng.choice([2, 3, 4, 4, 5, 6, 8]))
        given[int(rng.integers(0, s)) if rng.random() < 0.3 else 0::s] = True
    elif kind == "prefix":
        given[: int(rng.integers(1, T - 1))] = True
    elif kind == "ends":
        a, b = int(rng.integers(1, T // 3)), int(rng.integers(1, T // 3))
        given[:a] = True
        given[T - b:] = True
    if given.all():
        given[int(rng.integers(0, T))] = False
    if not given.any():
        given[int(rng.integers(0, T))] = True
    return given


MASK_MIXES = {"ramvid": (["random"], [1.0]), "tasks": (["random", "stride", "prefix", "ends"], [0.4, 0.3, 0.2, 0.1])}


def sample_masks(batch: int, T: int, res: int, rng: np.random.Generator, p_uncond: float = 0.25,
                 p_region: float = 0.15, mask_mix: str = "ramvid") -> np.ndarray:
    """Float32 (B, 1, T, R, R) masks, 1 = generate, 0 = given (clean)."""
    if mask_mix not in MASK_MIXES:
        raise ValueError(f"Unknown mask_mix {mask_mix!r}; use one of {', '.join(MASK_MIXES)}.")
    out = np.ones((batch, 1, T, res, res), np.float32)
    kinds, probs = MASK_MIXES[mask_mix]
    for b in range(batch):
        u = rng.random()
        if u < p_uncond:
            continue
        if u < p_uncond + p_region:
            # region extension: some frames fully given, a box hidden in a subset of frames
            given = rng.random(T) < rng.uniform(0.3, 1.0)
            m = np.where(given[:, None, None], 0.0, 1.0) * np.ones((T, res, res), np.float32)
            bw, bh = rng.integers(res // 6, res // 2 + 1, 2)
            x0, y0 = rng.integers(0, res - bw + 1), rng.integers(0, res - bh + 1)
            frames = rng.random(T) < rng.uniform(0.3, 1.0)
            m[frames, y0:y0 + bh, x0:x0 + bw] = 1.0
            if m.min() == 1.0:  # keep at least one given pixel
                m[int(rng.integers(0, T))] = 0.0
                m[frames, y0:y0 + bh, x0:x0 + bw] = 1.0
            if m.max() == 0.0:
                m[int(rng.integers(0, T)), y0:y0 + bh, x0:x0 + bw] = 1.0
            out[b, 0] = m
            continue
        given = frame_pattern(str(rng.choice(kinds, p=probs)), T, rng)
        out[b, 0, given] = 0.0
    return out


# ---------------------------------------------------------------- training loss
def masked_loss(net, x0: torch.Tensor, mask: torch.Tensor, t: torch.Tensor | None = None,
                noise: torch.Tensor | None = None) -> torch.Tensor:
    """RaMViD's loss: noise all pixels, put given ones back clean, MSE on v over generated pixels only."""
    b = x0.shape[0]
    if t is None:
        t = torch.rand(b, device=x0.device) * (T_MAX - T_MIN) + T_MIN
    if noise is None:
        noise = torch.randn_like(x0)
    a, s = alpha_sigma(t)
    a, s = _bshape(a), _bshape(s)
    zt = a * x0 + s * noise
    x_in = mask * zt + (1 - mask) * x0
    v = a * noise - s * x0
    v_hat = net(x_in, mask, t)
    err = (v_hat - v) ** 2 * mask
    return err.sum() / (mask.sum() * x0.shape[1]).clamp_min(1.0)


# ---------------------------------------------------------------- sampling
@torch.no_grad()
def ddim_sample(net, x0_given: torch.Tensor, mask: torch.Tensor, steps: int = 25, eta: float = 0.0,
                resample: int = 1, generator: torch.Generator | None = None, progress=None) -> torch.Tensor:
    """Sample the generated pixels (mask == 1) given clean pixels (mask == 0). Returns x0 in [-1, 1].

    x0_given: (B, C, T, H, W) in [-1, 1] (values under mask == 1 are ignored); mask (B, 1, T, H, W).
    Network evaluations = steps * resample.
    """
    steps, resample = max(1, int(steps)), max(1, int(resample))
    dev = x0_given.device

    def randn():
        return torch.randn(x0_given.shape, generator=generator, device="cpu").to(dev)

    ts = torch.linspace(T_MAX, 0.0, steps + 1)
    z = randn()
    x0_hat = torch.zeros_like(x0_given)
    total, done = steps * resample, 0
    for i in range(steps):
        t, t_prev = ts[i], ts[i + 1]
        a, s = alpha_sigma(t)
        a_p, s_p = alpha_sigma(t_prev)
        for r in range(resample):
            z_in = mask * z + (1 - mask) * x0_given  # given pixels written back clean, every step
            v_hat = net(z_in, mask, t.expand(z.shape[0]).to(dev))
            x0_hat = (a * z_in - s * v_hat).clamp(-1, 1)
            eps = (z_in - a * x0_hat) / s
            if t_prev <= 0:
                z = x0_hat
            else:
                c = eta * torch.sqrt((s_p**2 / s**2) * (1 - (a**2 * s_p**2) / (a_p**2 * s**2)).clamp_min(0))
                c = torch.minimum(c, s_p)
                z = a_p * x0_hat + torch.sqrt(s_p**2 - c**2) * eps + (c * randn() if eta > 0 else 0.0)
                if r < resample - 1:  # RePaint: jump back to t and denoise again
                    ratio = a / a_p
                    z = ratio * z + torch.sqrt((s**2 - ratio**2 * s_p**2).clamp_min(0)) * randn()
            done += 1
            if progress is not None:
                progress.update(done, total, f"denoising step {i + 1}/{steps}")
    return mask * z + (1 - mask) * x0_given
