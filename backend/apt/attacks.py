"""Attacks on one digit: APT (pivot inversion, then generator tuning), APT with PGD on top, and pixel PGD.

Pivots depend only on the image and the inversion settings (inversion is deterministic), so attacks on
several classifiers share them through a small bounded cache kept in this module.
"""

from __future__ import annotations

import hashlib
import threading
from dataclasses import dataclass, field

import numpy as np

from backend.apt import metrics as M
from backend.apt.data import SIZE, to_uint8
from backend.apt.inference import perceptual, probabilities, to_tensor
from backend.apt.inputs import apt_settings, check_classifier, check_image, check_label, check_mode
from backend.apt.judge import judge_probs
from backend.apt.loading import Models, load_models
from backend.core.progress import as_progress

DEFAULT_EPS = 0.1  # [0, 1] units: the robust classifier's training epsilon
EDIT_ALPHAS = np.linspace(-2.0, 2.0, 9)
_PIVOTS: dict = {}
_PIVOT_LOCK = threading.Lock()


@dataclass
class AttackResult:
    original: np.ndarray                   # uint8 (32, 32, 3)
    reconstruction: np.ndarray             # G(w_p, y): the pivot, uint8
    adversarial: np.ndarray                # G'(w_p, y) (or its PGD'd version), uint8
    label: int
    target: int | None
    classifier: str
    mode: str
    success: bool                          # the attacked classifier is fooled by `adversarial`
    eligible: bool                         # original and pivot were classified correctly
    steps_used: int
    probs_before: dict                     # classifier -> (10,) on the original
    probs_pivot: dict                      # classifier -> (10,) on the reconstruction
    probs_after: dict                      # classifier -> (10,) on the adversarial
    metrics: dict                          # change metrics vs the original, pivot PSNR, locality, ...
    frames: list = field(default_factory=list)     # (stage, step, uint8 image) snapshots
    edits: dict = field(default_factory=dict)      # latent edits in G and G' (see `attack`)
    judge_before: np.ndarray | None = None  # the independent judge's (10,) probabilities on the original
    judge_after: np.ndarray | None = None   # ... and on the adversarial image (read afterwards, never attacked)

    @property
    def judge_reads(self) -> int:
        """The judge's reading of the adversarial image."""
        return int(np.argmax(self.judge_after))

    @property
    def kept(self) -> bool:
        """The judge still reads the true class in the adversarial image."""
        return self.judge_reads == self.label

    @property
    def fooled_and_kept(self) -> bool:
        """The attacked classifier is fooled and the judge still reads the true class."""
        return bool(self.success and self.kept)

    @property
    def transfer(self) -> dict:
        """classifier -> fooled by this image (for transfer at a glance)."""
        return {k: fools(v, self.label, self.target) for k, v in self.probs_after.items()}


def fools(probs: np.ndarray, label: int, target: int | None) -> bool:
    """The attack's success rule: untargeted, any class but the label wins; targeted, the target wins."""
    pred = int(np.argmax(probs))
    return pred != label if target is None else pred == target


def forget_pivots() -> None:
    """Empty the pivot cache (so a timing includes the inversion)."""
    with _PIVOT_LOCK:
        _PIVOTS.clear()


def _pivot_key(img: np.ndarray, y: int, s, m: Models) -> str:
    return hashlib.sha1(img.tobytes()).hexdigest() + f":{y}:{s.inv_steps}:{s.inv_lr}:{id(m.generator)}"


def _remember_pivot(key: str, w) -> None:
    with _PIVOT_LOCK:
        if len(_PIVOTS) >= 512:
            _PIVOTS.pop(next(iter(_PIVOTS)))
        _PIVOTS[key] = w.detach().clone()


def invert_many(images: np.ndarray, labels: np.ndarray, settings, progress=None) -> None:
    """Invert a batch of images at once (same result per image as alone) and cache their pivots."""
    import torch

    from backend.apt.tuning import invert

    m = load_models()
    todo = [i for i, (im, y) in enumerate(zip(images, labels)) if _pivot_key(im, int(y), settings, m) not in _PIVOTS]
    if not todo:
        return
    x = to_tensor(images[todo], m.device)
    with torch.enable_grad():
        w = invert(m.generator, m.perceptual, x, torch.as_tensor(labels[todo], device=m.device),
                   steps=settings.inv_steps, lr=settings.inv_lr, progress=progress)
    for j, i in enumerate(todo):
        _remember_pivot(_pivot_key(images[i], int(labels[i]), settings, m), w[j: j + 1])


def pgd(image, label, classifier: str = "cnn", eps: float = 8 / 255, steps: int = 40, target=None,
        seed: int = 0, step_size: float | None = None) -> np.ndarray:
    """L∞ PGD on one image; `eps` (and `step_size`) in [0, 1] units; returns uint8 with ‖Δ‖∞ ≤ eps."""
    import torch

    from backend.apt.tuning import pgd_tensor

    img = check_image(image)
    y = check_label(label)
    t = None if target is None else check_label(target, "target class")
    if not 0 <= float(eps) <= 1:
        raise ValueError(f"eps must be between 0 and 1 (in [0, 1] pixel units); got {eps}.")
    if not 0 <= int(steps) <= 1000:
        raise ValueError("PGD steps must be between 0 and 1000.")
    m = load_models()
    net = m.nets[check_classifier(classifier)]
    x = to_tensor(img[None], m.device)
    with torch.enable_grad():
        xa = pgd_tensor(net, x, torch.tensor([y], device=m.device), eps=2 * float(eps), steps=int(steps),
                        step_size=None if step_size is None else 2 * float(step_size),
                        target=None if t is None else torch.tensor([t], device=m.device), seed=seed)
    adv = to_uint8(xa[0, 0].cpu().numpy())
    # uint8 rounding must not break the bound
    bound = int(np.floor(float(eps) * 255 + 1e-6))
    lo = np.clip(img.astype(int) - bound, 0, 255)
    hi = np.clip(img.astype(int) + bound, 0, 255)
    return np.clip(adv.astype(int), lo, hi).astype(np.uint8)


def _tune(m: Models, img, y: int, t, name: str, s, seed: int, p, snap, total: int):
    """Pivot (cached or inverted), then APT: (w_p, G', pivot tensor, steps used, adversarial uint8)."""
    import torch

    from backend.apt.tuning import apt_tune, invert

    x = to_tensor(img[None], m.device)
    key = _pivot_key(img, y, s, m)
    w_p = _PIVOTS.get(key)
    if w_p is None:
        w_p = invert(m.generator, m.perceptual, x, y, steps=s.inv_steps, lr=s.inv_lr, progress=p,
                     on_image=snap, total=total)
        _remember_pivot(key, w_p)
    else:
        p.update(s.inv_steps, total, "pivot inversion (cached)")
    with torch.no_grad():
        recon_t = m.generator.decode(w_p, torch.tensor([y], device=m.device))
    Gt, xa, used, _ = apt_tune(m.generator, m.nets[name], m.perceptual, x, y, w_p, target=t, settings=s,
                               seed=seed, progress=p, on_image=snap, offset=s.inv_steps, total=total,
                               D=m.discriminator)
    snap("tuned", used, xa)
    return w_p, Gt, recon_t, used, to_uint8(xa[0, 0].cpu().numpy())


def attack(image, label, classifier: str = "cnn", target=None, mode: str = "apt", steps: int | None = None,
           seed: int = 0, eps: float = DEFAULT_EPS, pgd_steps: int = 40, progress=None, on_image=None,
           edits: bool = True, **settings) -> AttackResult:
    """Attack one digit. mode: "apt" (generator tuning), "apt+pgd" (PGD with `eps` on top of the APT
    image), or "pgd" (pixel space only). `steps` caps the tuning steps (default 300, early stop at the
    first fooling image); further APT settings (lr, adv_weight, rec_weight, perc_weight, reg_weight,
    alpha, kappa, inv_steps) may be passed by name. `on_image(stage, step, uint8 image)` receives the
    evolving image. Returns an AttackResult with images, probabilities for every classifier, metrics,
    and latent edits (`edits["original"]`, `edits["tuned"]`: (3 directions, 9 steps, 32, 32, 3)).
    """
    import torch

    img = check_image(image)
    y = check_label(label)
    t = None if target is None else check_label(target, "target class")
    if t is not None and t == y:
        raise ValueError("The target class equals the digit's own class; pick another target or 'untargeted'.")
    name, mode = check_classifier(classifier), check_mode(mode)
    s = apt_settings(steps, **settings)
    m = load_models()
    p = as_progress(progress)
    frames: list = []

    def snap(stage, step, out):
        im = to_uint8(out[0, 0].cpu().numpy())
        frames.append((stage, int(step), im))
        if on_image is not None:
            on_image(stage, int(step), im)

    total = s.inv_steps + s.steps + (pgd_steps if mode == "apt+pgd" else 0)
    # The cached models are never modified (APT tunes a deep copy of G; all weights are frozen), and
    # randomness comes from per-call generators, so concurrent attacks need no lock.
    with torch.enable_grad():
        if mode == "pgd":
            adv = pgd(img, y, name, eps=eps, steps=pgd_steps, target=t, seed=seed)
            w_p, Gt, recon_t, used = None, None, None, int(pgd_steps)
            p.update(total, total, "PGD done")
        else:
            w_p, Gt, recon_t, used, adv = _tune(m, img, y, t, name, s, seed, p, snap, total)
            if mode == "apt+pgd":
                adv = pgd(adv, y, name, eps=eps, steps=pgd_steps, target=t, seed=seed)
                p.update(total, total, "PGD on top of APT done")
    recon = img.copy() if recon_t is None else to_uint8(recon_t[0, 0].cpu().numpy())
    res = _result(m, img, recon, adv, y, t, name, mode, used, frames)
    if w_p is not None:
        res.metrics.update(pivot_psnr=M.psnr(img, recon), pivot_ssim=M.ssim(img, recon),
                           ssim_to_pivot=M.ssim(recon, adv))
        res.edits, loc = edits_and_locality(m, Gt, w_p, y, name, seed, with_edits=edits)
        res.metrics.update(loc)
    return res


def _result(m: Models, img, recon, adv, y, t, name, mode, used, frames) -> AttackResult:
    """Probabilities of every classifier on the original, pivot and adversarial, the success rule, metrics."""
    probs = {k: {c: probabilities(net, to_tensor(im[None], m.device))[0] for c, net in m.nets.items()}
             for k, im in (("before", img), ("pivot", recon), ("after", adv))}
    eligible = int(np.argmax(probs["before"][name])) == y and int(np.argmax(probs["pivot"][name])) == y
    metrics = {**M.change_metrics(img, adv), "perceptual": perceptual(img, adv), "steps": float(used)}
    judged = judge_probs(np.stack([img, adv]))  # the final uint8 images only: no gradient reaches the judge
    return AttackResult(img, recon, adv, y, t, name, mode, fools(probs["after"][name], y, t), bool(eligible),
                        int(used), probs["before"], probs["pivot"], probs["after"], metrics, frames,
                        judge_before=judged[0], judge_after=judged[1])


def edits_and_locality(m: Models, Gt, w_p, y: int, name: str, seed: int, with_edits: bool = True):
    """Latent edits along the class's 3 principal directions through w_p in G and G', and how much G'
    differs from G at other latents (class-conditional samples of every class)."""
    import torch

    dev = m.device
    alphas = torch.as_tensor(EDIT_ALPHAS, dtype=torch.float32, device=dev)
    dirs = m.class_dirs[y] * m.class_dir_std[y][:, None]            # (3, latent)
    flat = (w_p[0][None, None] + alphas[None, :, None] * dirs[:, None]).reshape(-1, w_p.shape[-1])  # 3 × 9
    ys = torch.full((flat.shape[0],), y, device=dev)
    gen = torch.Generator().manual_seed(int(seed) + 1)
    n = 100 if with_edits else 30
    yo = torch.arange(n, device=dev) % 10
    eps = torch.randn(n, m.class_mean.shape[1], generator=gen).to(dev)
    wo = m.class_mean[yo] + torch.einsum("nij,nj->ni", m.class_chol[yo], eps)
    net = m.nets[name]
    with torch.no_grad():
        e0, e1 = m.generator.decode(flat, ys), Gt.decode(flat, ys)
        o0, o1 = m.generator.decode(wo, yo), Gt.decode(wo, yo)
        r_other = float((o1 - o0).pow(2).mean((1, 2, 3)).sqrt().mean() / 2)       # [0, 1] units
        r_pivot = float((Gt.decode(w_p, ys[:1]) - m.generator.decode(w_p, ys[:1])).pow(2).mean().sqrt() / 2)
        same0 = float((net(o0).argmax(1) == net(o1).argmax(1)).float().mean())
        pred0, pred1 = net(e0).argmax(1), net(e1).argmax(1)
    loc = {"rmse_change_pivot": r_pivot, "rmse_change_other_latents": r_other, "other_latents_same_pred": same0}
    if not with_edits:
        return {}, loc
    shape = (3, len(EDIT_ALPHAS), SIZE, SIZE, 3)
    return {
        "alphas": EDIT_ALPHAS.copy(),
        "original": to_uint8(e0[:, 0].cpu().numpy()).reshape(shape),
        "tuned": to_uint8(e1[:, 0].cpu().numpy()).reshape(shape),
        "pred_original": pred0.cpu().numpy().reshape(3, -1),
        "pred_tuned": pred1.cpu().numpy().reshape(3, -1),
    }, loc
