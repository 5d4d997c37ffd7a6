"""Training loops for the APT page's networks (classifiers, robust classifier, cVAE generator).

Each loop is a plain function of (data, steps, seed) so the trainer can run it in stages with
resumable state, and tests can run it for a few steps on tiny data.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from backend.apt.model import CNN, CVAE, MLP
from backend.apt.tuning import pgd_tensor


def shift_augment(x: torch.Tensor, gen: torch.Generator, max_shift: int = 2) -> torch.Tensor:
    """Random integer translations (zero = background -1 fill) of a batch (N, 1, H, W)."""
    n, _, h, w = x.shape
    pad = F.pad(x, (max_shift,) * 4, value=-1.0)
    dx = torch.randint(0, 2 * max_shift + 1, (n,), generator=gen)
    dy = torch.randint(0, 2 * max_shift + 1, (n,), generator=gen)
    out = torch.empty_like(x)
    for i in range(n):
        out[i] = pad[i, :, dy[i]: dy[i] + h, dx[i]: dx[i] + w]
    return out


def make_classifier(kind: str) -> torch.nn.Module:
    if kind in ("cnn", "robust", "perceptual"):
        return CNN(width=16)
    if kind == "mlp":
        return MLP((512, 256))
    raise ValueError(f"unknown classifier kind {kind!r}")


def accuracy(model, x: np.ndarray, y: np.ndarray, device="cpu", batch: int = 512) -> float:
    model.eval()
    correct = 0
    with torch.no_grad():
        for i in range(0, len(x), batch):
            xb = torch.as_tensor(x[i: i + batch], device=device)[:, None]
            correct += int((model(xb).argmax(1).cpu().numpy() == y[i: i + batch]).sum())
    return correct / max(1, len(x))


def pgd_accuracy(model, x: np.ndarray, y: np.ndarray, eps01: float, steps: int = 40, device="cpu",
                 seed: int = 0, batch: int = 256) -> float:
    """Accuracy under L∞ PGD with `eps01` in [0, 1] units (2·eps01 in the [-1, 1] data units)."""
    model.eval()
    correct = 0
    for i in range(0, len(x), batch):
        xb = torch.as_tensor(x[i: i + batch], device=device)[:, None]
        yb = torch.as_tensor(y[i: i + batch], device=device)
        xa = pgd_tensor(model, xb, yb, eps=2 * eps01, steps=steps, seed=seed + i)
        with torch.no_grad():
            correct += int((model(xa).argmax(1) == yb).sum())
    return correct / max(1, len(x))


def train_classifier(model, x: np.ndarray, y: np.ndarray, steps: int, seed: int, device="cpu",
                     adv_eps01: float = 0.0, adv_steps: int = 7, lr: float = 1e-3, batch: int = 64,
                     start_step: int = 0, opt_state=None, on_step=None):
    """Adam + shift augmentation; with `adv_eps01` > 0, half of each batch is replaced by PGD examples
    (Madry et al. 2018; eps in [0, 1] units, step 2.5·eps/adv_steps). Returns the optimiser."""
    gen = torch.Generator().manual_seed(int(seed) * 1000 + 7)
    for _ in range(start_step):  # replay the batch draws so resumed runs see the same data order
        torch.randint(0, len(x), (batch,), generator=gen)
        torch.randint(0, 5, (2 * batch,), generator=gen)
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    if opt_state is not None:
        opt.load_state_dict(opt_state)
    sched_total = max(1, steps)
    xt, yt = torch.as_tensor(x), torch.as_tensor(y)
    for step in range(start_step, steps):
        for g in opt.param_groups:  # cosine decay
            g["lr"] = lr * 0.5 * (1 + np.cos(np.pi * step / sched_total))
        idx = torch.randint(0, len(x), (batch,), generator=gen)
        xb = shift_augment(xt[idx][:, None], gen).to(device)
        yb = yt[idx].to(device)
        model.train()
        if adv_eps01 > 0:
            model.eval()
            h = batch // 2
            xb = xb.clone()
            xb[:h] = pgd_tensor(model, xb[:h], yb[:h], eps=2 * adv_eps01, steps=adv_steps,
                                seed=seed * 100003 + step)
            model.train()
        loss = F.cross_entropy(model(xb), yb)
        opt.zero_grad()
        loss.backward()
        opt.step()
        if on_step is not None:
            on_step(step + 1, float(loss.detach()), opt)
    model.eval()
    return opt


def train_cvae(model: CVAE, x: np.ndarray, y: np.ndarray, steps: int, seed: int, device="cpu", lr: float = 1e-3,
               batch: int = 64, beta: float = 1.0, aux=None, aux_weight: float = 0.0, start_step: int = 0,
               opt_state=None, on_step=None):
    """cVAE with summed-pixel MSE + beta·KL. With `aux` (a frozen classifier) and `aux_weight` > 0, prior
    samples G(z ~ N(0, I), y) are also pushed to be recognised as y by `aux` (class consistency)."""
    gen = torch.Generator().manual_seed(int(seed) * 1000 + 11)
    for _ in range(start_step):
        torch.randint(0, len(x), (batch,), generator=gen)
        torch.randint(0, 5, (2 * batch,), generator=gen)
        torch.randn(batch, model.latent, generator=gen)
        torch.randint(0, model.n_classes, (batch,), generator=gen)
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    if opt_state is not None:
        opt.load_state_dict(opt_state)
    xt, yt = torch.as_tensor(x), torch.as_tensor(y)
    for step in range(start_step, steps):
        for g in opt.param_groups:
            g["lr"] = lr * 0.5 * (1 + np.cos(np.pi * step / max(1, steps)))
        idx = torch.randint(0, len(x), (batch,), generator=gen)
        xb = shift_augment(xt[idx][:, None], gen, max_shift=1).to(device)
        yb = yt[idx].to(device)
        model.train()
        mu, logvar = model.encode(xb, yb)
        eps = torch.randn(mu.shape, generator=gen).to(device)
        rec = model.decode(mu + eps * (0.5 * logvar).exp(), yb)
        recon = (rec - xb).pow(2).sum((1, 2, 3)).mean()
        kl = (-0.5 * (1 + logvar - mu.pow(2) - logvar.exp()).sum(1)).mean()
        loss = recon + beta * kl
        zs = torch.randn(batch, model.latent, generator=gen).to(device)
        ys = torch.randint(0, model.n_classes, (batch,), generator=gen).to(device)
        if aux is not None and aux_weight > 0:
            loss = loss + aux_weight * F.cross_entropy(aux(model.decode(zs, ys)), ys)
        opt.zero_grad()
        loss.backward()
        opt.step()
        if on_step is not None:
            on_step(step + 1, float(loss.detach()), opt)
    model.eval()
    return opt
