"""Adversarial Pivotal Tuning (Christensen et al., WACV 2024) and the PGD baseline, on torch tensors.

APT: (1) invert the image into a pivot latent w_p of the frozen generator (encoder init + Adam on
MSE + perceptual distance); (2) copy the generator and tune its *weights* with w_p fixed so that
G'(w_p, y) fools the classifier, while staying close to the image (MSE + perceptual distance) and
keeping G' ≈ G at other latents (PTI's locality regulariser at w_r = w_p + α·(z − w_p)/‖z − w_p‖) and
realistic under a discriminator D (the paper's L_PG uses the GAN's jointly trained D; here D is fitted
afterwards to the frozen G's outputs, and the term is the generator hinge −D(G'(w_p), y) conditioned on the
digit's own class). The full loss per step:

    L = rec·MSE(x', x) + perc·d_P(x', x) + reg·MSE(G'(w_r, y_r), G(w_r, y_r))
        + adv·max(margin(C(x'), y), −κ) + realism·(−D(x', y)),        x' = G'(w_p, y)

Unlike the reference code the fooling term uses a fixed goal (untargeted CW margin on the true class,
or a fixed target class), and tuning stops at the first step whose image fools the classifier
(checked before the optimiser step). Tensors are (N, 1, 32, 32) in [-1, 1].
"""

from __future__ import annotations

import copy
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from backend.apt.model import perceptual_distance
from backend.core.progress import as_progress


@dataclass
class APTSettings:
    steps: int = 300            # max tuning steps (early stop at the first fooling image)
    lr: float = 1e-4            # Adam on the generator weights (chosen on validation; PTI uses 3e-4)
    adv_weight: float = 0.1     # fooling term: the sweep's smallest weight that fools CNN and robust CNN on 100 %
    rec_weight: float = 1.0     # MSE(G'(w_p), x), [-1, 1] units
    perc_weight: float = 1.0    # perceptual distance in P's features
    reg_weight: float = 1.0     # locality: MSE(G'(w_r), G(w_r))
    realism_weight: float = 0.0  # realism −D(G'(w_p), y); 0 was chosen on validation digits (apt-discriminator card)
    alpha: float = 3.0          # distance of the locality latents from the pivot (latent units)
    kappa: float = 0.5          # margin: stop pushing once the goal logit leads by kappa
    inv_steps: int = 60         # pivot inversion steps
    inv_lr: float = 0.05


def margin_loss(logits: torch.Tensor, label: int, target: int | None, kappa: float) -> torch.Tensor:
    """CW margin: untargeted z_y − max_{k≠y} z_k, targeted max_{k≠t} z_k − z_t; clamped at −kappa."""
    goal = label if target is None else target
    z_goal = logits[:, goal]
    other = logits.clone()
    other[:, goal] = -1e9
    z_other = other.max(1).values
    m = (z_goal - z_other) if target is None else (z_other - z_goal)
    return torch.clamp(m, min=-kappa)


def realism_loss(D, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """The generator's hinge term −D(x, y), averaged (low when D finds the images real)."""
    return -D(x, y).mean()


def fooled(logits: torch.Tensor, label: int, target: int | None) -> torch.Tensor:
    pred = logits.argmax(1)
    return pred != label if target is None else pred == target


def invert(G, P, x: torch.Tensor, y, steps: int = 60, lr: float = 0.05, progress=None, on_image=None,
           offset: int = 0, total: int | None = None) -> torch.Tensor:
    """Pivot latents w_p (N, latent) reconstructing x (N, 1, 32, 32) with G frozen (encoder means as start).

    The loss is a sum of per-image terms and Adam is elementwise, so a batch inverts each image as if alone.
    """
    p = as_progress(progress)
    total = total or steps
    yt = torch.as_tensor(y, device=x.device).reshape(-1)
    with torch.no_grad():
        w0, _ = G.encode(x, yt)
    w = w0.clone().requires_grad_(True)
    opt = torch.optim.Adam([w], lr=lr)
    for i in range(steps):
        out = G.decode(w, yt)
        loss = ((out - x).pow(2).mean((1, 2, 3)) + perceptual_distance(P, out, x)).sum()
        opt.zero_grad()
        loss.backward()
        opt.step()
        if i % 10 == 0 or i == steps - 1:
            p.update(offset + i + 1, total, f"pivot inversion {i + 1}/{steps}")
            if on_image is not None:
                on_image("inversion", i + 1, out.detach())
    return w.detach()


def apt_tune(G, C, P, x: torch.Tensor, y: int, w_p: torch.Tensor, target: int | None = None,
             settings: APTSettings | None = None, seed: int = 0, progress=None, on_image=None,
             offset: int = 0, total: int | None = None, D=None):
    """Tune a copy of G so that G'(w_p, y) fools C (D: the realism term's discriminator; None or a zero
    `realism_weight` drops the term). Returns (G', x_adv, steps_used, success)."""
    s = settings or APTSettings()
    p = as_progress(progress)
    total = total or s.steps
    gen = torch.Generator().manual_seed(int(seed))
    Gt = copy.deepcopy(G)
    Gt.requires_grad_(True)
    # Only the decoder is the generator; the encoder is not used after inversion.
    params = list(Gt.fc.parameters()) + list(Gt.dec.parameters())
    opt = torch.optim.Adam(params, lr=s.lr)
    yt = torch.tensor([y], device=x.device)
    steps_used, success = 0, False
    out = None
    for i in range(s.steps + 1):
        out = Gt.decode(w_p, yt)
        logits = C(out)
        if bool(fooled(logits, y, target)[0]):
            success = True
            break
        if i == s.steps:
            break
        z = torch.randn(4, w_p.shape[1], generator=gen).to(x.device)
        d = z - w_p
        w_r = w_p + s.alpha * d / d.norm(dim=1, keepdim=True)
        yr = torch.randint(0, G.n_classes, (4,), generator=gen).to(x.device)
        with torch.no_grad():
            ref = G.decode(w_r, yr)
        loss = (s.rec_weight * F.mse_loss(out, x) + s.perc_weight * perceptual_distance(P, out, x).mean()
                + s.reg_weight * F.mse_loss(Gt.decode(w_r, yr), ref)
                + s.adv_weight * margin_loss(logits, y, target, s.kappa).mean())
        if D is not None and s.realism_weight > 0:
            loss = loss + s.realism_weight * realism_loss(D, out, yt)
        opt.zero_grad()
        loss.backward()
        opt.step()
        steps_used = i + 1
        if i % 5 == 0:
            p.update(offset + i + 1, total, f"tuning the generator {i + 1}/{s.steps}")
            if on_image is not None:
                on_image("tuning", i + 1, out.detach())
    Gt.requires_grad_(False)
    return Gt, out.detach(), steps_used, success


def pgd_tensor(C, x: torch.Tensor, labels: torch.Tensor, eps: float, steps: int = 40, step_size: float | None = None,
               target: torch.Tensor | None = None, seed: int = 0, random_start: bool = True) -> torch.Tensor:
    """L∞ PGD (Madry et al. 2018) on a batch x in [-1, 1]; `eps`, `step_size` in [-1, 1] units.

    Untargeted: ascend CE(C(x), y); targeted: descend CE(C(x), t). Random start U(−eps, eps).
    """
    a = step_size if step_size is not None else 2.5 * eps / max(1, steps)
    gen = torch.Generator().manual_seed(int(seed))
    if random_start and eps > 0:
        delta = (torch.rand(x.shape, generator=gen) * 2 - 1).to(x.device) * eps
    else:
        delta = torch.zeros_like(x)
    xa = (x + delta).clamp(-1, 1)
    for _ in range(steps):
        xa = xa.detach().requires_grad_(True)
        logits = C(xa)
        if target is None:
            loss = F.cross_entropy(logits, labels)
        else:
            loss = -F.cross_entropy(logits, target)
        (g,) = torch.autograd.grad(loss, xa)
        xa = xa.detach() + a * g.sign()
        xa = torch.min(torch.max(xa, x - eps), x + eps).clamp(-1, 1)
    return xa.detach()
