"""The APT page's public functions: load the shipped models, classify, attack (APT, APT+PGD), PGD."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field

import numpy as np

from backend.apt import metrics as M
from backend.apt.data import SIZE, from_uint8, to_uint8
from backend.core.cache import cached
from backend.core.progress import as_progress

CLASSIFIERS = ["cnn", "mlp", "robust"]
CHECKPOINTS = {"generator": "apt-generator", "cnn": "apt-cnn", "mlp": "apt-mlp", "robust": "apt-robust"}
DEFAULT_EPS = 0.1  # [0, 1] units: the robust classifier's training epsilon
MODES = ("apt", "apt+pgd", "pgd")
EDIT_ALPHAS = np.linspace(-2.0, 2.0, 9)


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
    lock: object = field(default_factory=threading.Lock)


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

    @property
    def transfer(self) -> dict:
        """classifier -> fooled by this image (for transfer at a glance)."""
        goal = self.target
        return {k: bool(np.argmax(v) != self.label) if goal is None else bool(np.argmax(v) == goal)
                for k, v in self.probs_after.items()}


def _build(payload: dict):
    from backend.apt.model import build

    m = build(payload["config"])
    m.load_state_dict(payload["state"])
    m.eval()
    m.requires_grad_(False)
    return m


@cached
def _load(device_str: str) -> Models:
    import torch

    from backend.core.registry import load_checkpoint

    dev = torch.device(device_str)
    gp, gcard = load_checkpoint(CHECKPOINTS["generator"])
    G = _build({"config": gp["config"], "state": gp["state"]}).to(dev)
    P = _build({"config": gp["perceptual_config"], "state": gp["perceptual_state"]}).to(dev)
    nets, cards = {}, {"generator": gcard}
    for name in CLASSIFIERS:
        pl, card = load_checkpoint(CHECKPOINTS[name])
        nets[name] = _build(pl).to(dev)
        cards[name] = card
    cov = gp["class_cov"].double() + 1e-4 * torch.eye(gp["class_cov"].shape[-1], dtype=torch.float64)
    return Models(G, P, nets, list(CLASSIFIERS), dev, gp["class_mean"].to(dev), gp["class_dirs"].to(dev),
                  gp["class_dir_std"].to(dev), torch.linalg.cholesky(cov).float().to(dev), cards)


def load_models(device: str | None = None) -> Models:
    """The generator, perceptual net and classifiers (cached once per process and device)."""
    from backend.core.device import get_device

    return _load(str(get_device(device)))


def _check_image(img) -> np.ndarray:
    a = np.asarray(img)
    if a.ndim == 2:
        a = np.repeat(a[..., None], 3, axis=-1)
    if a.ndim != 3 or a.shape[:2] != (SIZE, SIZE):
        raise ValueError(f"Images must be {SIZE}×{SIZE} (got shape {a.shape}); convert drawings and uploads "
                         f"with prepare_image() first.")
    if a.dtype != np.uint8:
        raise ValueError("Images must be uint8 (0–255).")
    return a[..., :3]


def _check_classifier(name: str) -> str:
    if name not in CLASSIFIERS:
        raise ValueError(f"Unknown classifier {name!r}; choose one of {', '.join(CLASSIFIERS)}.")
    return name


def _check_label(label, what="label") -> int:
    try:
        v = int(label)
    except (TypeError, ValueError) as e:
        raise ValueError(f"The {what} must be a digit 0–9 (got {label!r}).") from e
    if not 0 <= v <= 9:
        raise ValueError(f"The {what} must be a digit 0–9 (got {v}).")
    return v


def _tensor(images: np.ndarray, dev):
    import torch

    return torch.as_tensor(from_uint8(images), device=dev)[:, None]


def _probs_t(net, x) -> np.ndarray:
    import torch

    with torch.no_grad():
        return torch.softmax(net(x), 1).cpu().numpy().astype(np.float64)


def classify(images, classifier: str = "cnn") -> np.ndarray:
    """Class probabilities (N, 10) of uint8 images (N, 32, 32, 3) (or one image (32, 32, 3))."""
    m = load_models()
    net = m.nets[_check_classifier(classifier)]
    a = np.asarray(images)
    if a.ndim == 3:
        a = a[None]
    if a.ndim != 4:
        raise ValueError(f"Expected images (N, {SIZE}, {SIZE}, 3); got shape {a.shape}.")
    a = np.stack([_check_image(i) for i in a])
    return _probs_t(net, _tensor(a, m.device))


def classify_all(image) -> dict:
    """classifier name -> (10,) probabilities for one image."""
    return {name: classify(image, name)[0] for name in CLASSIFIERS}


def describe_change(original, changed) -> dict:
    """Change metrics (L2, L∞, RMSE, SSIM, high-frequency share; [0, 1] units) plus the perceptual
    distance in the project-trained net P."""
    import torch

    from backend.apt.model import perceptual_distance

    a, b = _check_image(original), _check_image(changed)
    out = M.change_metrics(a, b)
    m = load_models()
    with torch.no_grad():
        out["perceptual"] = float(perceptual_distance(m.perceptual, _tensor(a[None], m.device),
                                                      _tensor(b[None], m.device))[0])
    return out


def generate(label: int, seed: int = 0, n: int = 1) -> np.ndarray:
    """Class-conditional samples of the generator, latents drawn from the class's fitted Gaussian
    (of the encoder means of the training digits): uint8 (n, 32, 32, 3)."""
    import torch

    y = _check_label(label)
    if not 1 <= int(n) <= 256:
        raise ValueError("Ask for between 1 and 256 samples.")
    m = load_models()
    gen = torch.Generator().manual_seed(int(seed))
    eps = torch.randn(int(n), m.class_mean.shape[1], generator=gen).to(m.device)
    w = m.class_mean[y] + eps @ m.class_chol[y].T
    with torch.no_grad():
        x = m.generator.decode(w, torch.full((int(n),), y, device=m.device))
    return to_uint8(x[:, 0].cpu().numpy())


def pgd(image, label, classifier: str = "cnn", eps: float = 8 / 255, steps: int = 40, target=None,
        seed: int = 0, step_size: float | None = None) -> np.ndarray:
    """L∞ PGD on one image; `eps` (and `step_size`) in [0, 1] units; returns uint8 with ‖Δ‖∞ ≤ eps."""
    import torch

    from backend.apt.tuning import pgd_tensor

    img = _check_image(image)
    y = _check_label(label)
    t = None if target is None else _check_label(target, "target class")
    if not 0 <= float(eps) <= 1:
        raise ValueError(f"eps must be between 0 and 1 (in [0, 1] pixel units); got {eps}.")
    if not 0 <= int(steps) <= 1000:
        raise ValueError("PGD steps must be between 0 and 1000.")
    m = load_models()
    net = m.nets[_check_classifier(classifier)]
    x = _tensor(img[None], m.device)
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


def _settings(steps, **overrides):
    from backend.apt.tuning import APTSettings

    s = APTSettings()
    if steps is not None:
        if not 0 <= int(steps) <= 2000:
            raise ValueError("APT steps must be between 0 and 2000.")
        s.steps = int(steps)
    for k, v in overrides.items():
        if v is None:
            continue
        if not hasattr(s, k):
            raise ValueError(f"Unknown APT setting {k!r}.")
        if float(v) < 0:
            raise ValueError(f"The APT setting {k} must be ≥ 0 (got {v}).")
        setattr(s, k, type(getattr(s, k))(v))
    return s


_PIVOTS: dict = {}
_PIVOT_LOCK = threading.Lock()


def _pivot_key(img: np.ndarray, y: int, s) -> str:
    import hashlib

    return hashlib.sha1(img.tobytes()).hexdigest() + f":{y}:{s.inv_steps}:{s.inv_lr}"


def _remember_pivot(key: str, w) -> None:
    """Pivots depend only on the image (inversion is deterministic), so attacks on several classifiers share
    them; a small bounded cache."""
    with _PIVOT_LOCK:
        if len(_PIVOTS) >= 512:
            _PIVOTS.pop(next(iter(_PIVOTS)))
        _PIVOTS[key] = w.detach().clone()


def _invert_many(images: np.ndarray, labels: np.ndarray, s, progress=None) -> None:
    """Invert a batch of images at once (same result per image as alone) and cache their pivots."""
    import torch

    from backend.apt.tuning import invert

    m = load_models()
    todo = [i for i, (im, y) in enumerate(zip(images, labels)) if _pivot_key(im, int(y), s) not in _PIVOTS]
    if not todo:
        return
    x = _tensor(images[todo], m.device)
    with torch.enable_grad():
        w = invert(m.generator, m.perceptual, x, torch.as_tensor(labels[todo], device=m.device),
                   steps=s.inv_steps, lr=s.inv_lr, progress=progress)
    for j, i in enumerate(todo):
        _remember_pivot(_pivot_key(images[i], int(labels[i]), s), w[j: j + 1])


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

    from backend.apt.tuning import apt_tune, invert

    img = _check_image(image)
    y = _check_label(label)
    t = None if target is None else _check_label(target, "target class")
    if t is not None and t == y:
        raise ValueError("The target class equals the digit's own class; pick another target or 'untargeted'.")
    name = _check_classifier(classifier)
    if mode not in MODES:
        raise ValueError(f"Unknown mode {mode!r}; choose one of {', '.join(MODES)}.")
    s = _settings(steps, **settings)
    m = load_models()
    p = as_progress(progress)
    dev = m.device
    net = m.nets[name]
    x = _tensor(img[None], dev)
    probs_before = {k: _probs_t(v, x)[0] for k, v in m.nets.items()}
    frames: list = []

    def snap(stage, step, out):
        im = to_uint8(out[0, 0].cpu().numpy())
        frames.append((stage, int(step), im))
        if on_image is not None:
            on_image(stage, int(step), im)

    total = s.inv_steps + s.steps + (pgd_steps if mode == "apt+pgd" else 0)
    yt = torch.tensor([y], device=dev)
    # The cached models are never modified (APT tunes a deep copy of G; all weights are frozen), and
    # randomness comes from per-call generators, so concurrent attacks need no lock.
    with torch.enable_grad():
        if mode == "pgd":
            adv = pgd(img, y, name, eps=eps, steps=pgd_steps, target=t, seed=seed)
            w_p, Gt, recon_t, used = None, None, None, int(pgd_steps)
            p.update(total, total, "PGD done")
        else:
            key = _pivot_key(img, y, s)
            w_p = _PIVOTS.get(key)
            if w_p is None:
                w_p = invert(m.generator, m.perceptual, x, y, steps=s.inv_steps, lr=s.inv_lr, progress=p,
                             on_image=snap, total=total)
                _remember_pivot(key, w_p)
            else:
                p.update(s.inv_steps, total, "pivot inversion (cached)")
            with torch.no_grad():
                recon_t = m.generator.decode(w_p, yt)
            Gt, xa, used, _ = apt_tune(m.generator, net, m.perceptual, x, y, w_p, target=t, settings=s,
                                       seed=seed, progress=p, on_image=snap, offset=s.inv_steps, total=total)
            snap("tuned", used, xa)
            adv = to_uint8(xa[0, 0].cpu().numpy())
            if mode == "apt+pgd":
                adv = pgd(adv, y, name, eps=eps, steps=pgd_steps, target=t, seed=seed)
                p.update(total, total, "PGD on top of APT done")
    xadv = _tensor(adv[None], dev)
    probs_after = {k: _probs_t(v, xadv)[0] for k, v in m.nets.items()}
    pred = int(np.argmax(probs_after[name]))
    success = pred != y if t is None else pred == t
    metrics = M.change_metrics(img, adv)
    with torch.no_grad():
        from backend.apt.model import perceptual_distance

        metrics["perceptual"] = float(perceptual_distance(m.perceptual, x, xadv)[0])
    recon = img.copy() if recon_t is None else to_uint8(recon_t[0, 0].cpu().numpy())
    probs_pivot = {k: _probs_t(v, _tensor(recon[None], dev))[0] for k, v in m.nets.items()}
    eligible = int(np.argmax(probs_before[name])) == y and int(np.argmax(probs_pivot[name])) == y
    edit_imgs: dict = {}
    if w_p is not None:
        metrics["pivot_psnr"] = M.psnr(img, recon)
        metrics["pivot_ssim"] = M.ssim(img, recon)
        metrics["ssim_to_pivot"] = M.ssim(recon, adv)
        edit_imgs, loc = _edits_and_locality(m, Gt, w_p, y, name, seed, with_edits=edits)
        metrics.update(loc)
    metrics["steps"] = float(used)
    return AttackResult(img, recon, adv, y, t, name, mode, bool(success), bool(eligible), int(used), probs_before,
                        probs_pivot, probs_after, metrics, frames, edit_imgs)


def _edits_and_locality(m: Models, Gt, w_p, y: int, name: str, seed: int, with_edits: bool = True):
    """Latent edits along the class's 3 principal directions through w_p in G and G', and how much G'
    differs from G at other latents (class-conditional samples of every class)."""
    import torch

    dev = m.device
    alphas = torch.as_tensor(EDIT_ALPHAS, dtype=torch.float32, device=dev)
    dirs = m.class_dirs[y] * m.class_dir_std[y][:, None]            # (3, latent)
    w = w_p[0][None, None] + alphas[None, :, None] * dirs[:, None]   # (3, 9, latent)
    flat = w.reshape(-1, w.shape[-1])
    ys = torch.full((flat.shape[0],), y, device=dev)
    gen = torch.Generator().manual_seed(int(seed) + 1)
    n = 100 if with_edits else 30
    yo = torch.arange(n, device=dev) % 10
    eps = torch.randn(n, m.class_mean.shape[1], generator=gen).to(dev)
    wo = m.class_mean[yo] + torch.einsum("nij,nj->ni", m.class_chol[yo], eps)
    with torch.no_grad():
        e0 = m.generator.decode(flat, ys)
        e1 = Gt.decode(flat, ys)
        o0, o1 = m.generator.decode(wo, yo), Gt.decode(wo, yo)
        pred0 = m.nets[name](e0).argmax(1)
        pred1 = m.nets[name](e1).argmax(1)
        r_other = float((o1 - o0).pow(2).mean((1, 2, 3)).sqrt().mean() / 2)       # [0, 1] units
        r_pivot = float((Gt.decode(w_p, ys[:1]) - m.generator.decode(w_p, ys[:1])).pow(2).mean().sqrt() / 2)
        same0 = float((m.nets[name](o0).argmax(1) == m.nets[name](o1).argmax(1)).float().mean())
    loc = {"rmse_change_pivot": r_pivot, "rmse_change_other_latents": r_other, "other_latents_same_pred": same0}
    if not with_edits:
        return {}, loc
    shape = (3, len(EDIT_ALPHAS), SIZE, SIZE, 3)
    edits = {
        "alphas": EDIT_ALPHAS.copy(),
        "original": to_uint8(e0[:, 0].cpu().numpy()).reshape(shape),
        "tuned": to_uint8(e1[:, 0].cpu().numpy()).reshape(shape),
        "pred_original": pred0.cpu().numpy().reshape(3, -1),
        "pred_tuned": pred1.cpu().numpy().reshape(3, -1),
    }
    return edits, loc


def _with_pgd_on_top(res: AttackResult, eps: float, pgd_steps: int, seed: int) -> AttackResult:
    """The APT+PGD result derived from an APT result (PGD with `eps` around the APT image)."""
    import dataclasses

    adv = pgd(res.adversarial, res.label, res.classifier, eps=eps, steps=pgd_steps, target=res.target, seed=seed)
    probs_after = classify_all(adv)
    pred = int(np.argmax(probs_after[res.classifier]))
    success = pred != res.label if res.target is None else pred == res.target
    metrics = {**res.metrics, **M.change_metrics(res.original, adv)}
    return dataclasses.replace(res, adversarial=adv, probs_after=probs_after, success=bool(success),
                               mode="apt+pgd", metrics=metrics, frames=[], edits={})


def batch_evaluate(n: int = 20, seed: int = 1, classifiers=None, modes=("apt", "pgd"), eps: float = DEFAULT_EPS,
                   steps: int | None = None, progress=None, pgd_steps: int = 40, **settings) -> list[dict]:
    """Attack `n` held-out test digits with each mode against each classifier.

    Returns one row per (mode, classifier): fooling rate among eligible images (original and, for APT,
    pivot classified correctly), n eligible, mean SSIM / L2 / L∞ / high-frequency share, transfer
    fooling rate on every other classifier (among images it classified correctly), seconds per image.
    "apt+pgd" reuses the APT run of the same image when "apt" is also asked for.
    """
    import time

    from backend.apt.data import test_set

    if not 1 <= int(n) <= 450:
        raise ValueError("Evaluate between 1 and 450 test images.")
    clfs = list(classifiers or CLASSIFIERS)
    for c in clfs:
        _check_classifier(c)
    for mode in modes:
        if mode not in MODES:
            raise ValueError(f"Unknown mode {mode!r}; choose from {', '.join(MODES)}.")
    images, labels = test_set(int(n), seed)
    p = as_progress(progress)
    if any(mo != "pgd" for mo in modes):
        p.update(0, 1, f"inverting {len(images)} digits")
        _invert_many(images, labels, _settings(steps, **settings))
    total = len(clfs) * len(images)
    rows, k = [], 0
    for c in clfs:
        recs = {m: [] for m in modes}
        secs = dict.fromkeys(modes, 0.0)
        for img, lab in zip(images, labels):
            p.update(k, total, f"attacking {c}: image {k % len(images) + 1}/{len(images)}")
            k += 1
            apt_res = None
            for mode in modes:
                t0 = time.time()
                if mode == "apt+pgd" and apt_res is not None:
                    r = _with_pgd_on_top(apt_res, eps, pgd_steps, seed)
                    secs[mode] += secs.get("_apt_last", 0.0)
                else:
                    r = attack(img, int(lab), classifier=c, mode=mode, steps=steps, seed=seed, eps=eps,
                               pgd_steps=pgd_steps, edits=False, **settings)
                if mode == "apt":
                    apt_res = r
                    secs["_apt_last"] = time.time() - t0
                secs[mode] += time.time() - t0
                recs[mode].append(r)
        for mode in modes:
            rows.append(summarise(recs[mode], mode, c, eps, secs[mode] / len(images)))
    p.update(total, total, "done")
    return rows


def summarise(recs: list, mode: str, classifier: str, eps: float, sec_per_image: float) -> dict:
    elig = [r for r in recs if r.eligible]
    ok = [r for r in elig if r.success]
    row = {
        "mode": mode, "classifier": classifier, "eps": eps if mode != "apt" else None,
        "n": len(recs), "n_eligible": len(elig),
        "fooling_rate": M.fooling_rate([r.success for r in elig]) if elig else float("nan"),
        "ssim": float(np.mean([r.metrics["ssim"] for r in elig])) if elig else float("nan"),
        "ssim_fooled": float(np.mean([r.metrics["ssim"] for r in ok])) if ok else float("nan"),
        "l2": float(np.mean([r.metrics["l2"] for r in elig])) if elig else float("nan"),
        "linf": float(np.mean([r.metrics["linf"] for r in elig])) if elig else float("nan"),
        "high_freq_share": float(np.mean([r.metrics["high_freq_share"] for r in elig])) if elig else float("nan"),
        "steps": float(np.mean([r.steps_used for r in elig])) if elig else float("nan"),
        "sec_per_image": float(sec_per_image),
    }
    for other in CLASSIFIERS:
        if other == classifier:
            continue
        base = [r for r in elig if int(np.argmax(r.probs_before[other])) == r.label]
        row[f"transfer_{other}"] = (float(np.mean([r.transfer[other] for r in base])) if base else float("nan"))
    if elig and "pivot_psnr" in elig[0].metrics:
        row["pivot_psnr"] = float(np.mean([r.metrics["pivot_psnr"] for r in recs]))
        row["rmse_change_other_latents"] = float(np.mean([r.metrics["rmse_change_other_latents"] for r in elig]))
    return row
