"""`python -m backend.train apt`: train the APT page's generator and classifiers, then evaluate the attacks.

Stages (each seeded, resumable from runs/apt/state.pt): the target CNN, the perceptual net P (same
architecture, another seed; never attacked), the MLP, the PGD-trained robust CNN, and the cVAE
generator. Checkpoints: apt-cnn, apt-mlp, apt-robust, apt-generator (G + P + per-class latent
statistics). Then APT, PGD and APT+PGD are run against every classifier on 100 held-out test digits,
plus a sweep of the adversarial weight on the CNN, and the results go into the cards.
"""

from __future__ import annotations

import json
import time

import numpy as np

NAME = "apt"
DEFAULT_STEPS = 800        # minibatch steps (batch 64) of the CNNs (~38 epochs of 1,347 digits); see STAGES
ROBUST_EPS = 0.1           # [0, 1] units (Madry's MNIST setting is 0.3; the smooth 8×8 scans need less)
N_EVAL = 100               # held-out test digits for the attack evaluation
EVAL_SEED = 1              # which 100 test digits (test_set(100, seed=1))
SWEEP = (0.01, 0.03, 0.1, 0.3, 1.0, 3.0)
SWEEP_CLASSIFIERS = ("cnn", "robust")
N_SWEEP = 20
STAGES = [  # (stage, kind, seed offset, share of `steps`): PGD training costs ~6× a clean step
    ("cnn", "cnn", 0, 1.0), ("perceptual", "perceptual", 1, 1.0), ("mlp", "mlp", 2, 1.5), ("robust", "robust", 3, 0.75),
    ("generator", "generator", 4, 1.5),
]


def _latent_stats(G, x, y, device):
    """Per-class mean, covariance and top-3 principal directions of the encoder means (train split)."""
    import torch

    with torch.no_grad():
        mu, _ = G.encode(torch.as_tensor(x, device=device)[:, None], torch.as_tensor(y, device=device))
    mu = mu.cpu().double()
    means, covs, dirs, stds = [], [], [], []
    for c in range(10):
        m = mu[torch.as_tensor(y) == c]
        mean = m.mean(0)
        cov = torch.cov((m - mean).T)
        ev, vec = torch.linalg.eigh(cov)
        order = ev.argsort(descending=True)[:3]
        means.append(mean)
        covs.append(cov)
        dirs.append(vec[:, order].T)
        stds.append(ev[order].clamp(min=0).sqrt())
    f = lambda t: torch.stack(t).float()  # noqa: E731
    return f(means), f(covs), f(dirs), f(stds)


def _features(cnn, x):
    """Spatially averaged last-block features of a CNN (64-d) for the Fréchet distance."""
    import torch

    with torch.no_grad():
        return cnn.features(torch.as_tensor(x)[:, None])[-1].mean((2, 3)).numpy().astype(np.float64)


def frechet(a: np.ndarray, b: np.ndarray) -> float:
    from scipy import linalg

    ma, mb = a.mean(0), b.mean(0)
    ca, cb = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    covmean, _ = linalg.sqrtm(ca @ cb, disp=False)
    covmean = np.real(covmean)
    return float(((ma - mb) ** 2).sum() + np.trace(ca + cb - 2 * covmean))


def _blur(x: np.ndarray, sigma: float = 1.5) -> np.ndarray:
    from scipy.ndimage import gaussian_filter

    return np.stack([gaussian_filter(i, sigma) for i in x]).astype(np.float32)


def _generator_metrics(G, cnn, mlp, stats, x_train, x_test, y_test, seed):
    import torch

    from backend.apt.data import to_uint8  # noqa: F401  (kept for symmetry with the API's images)

    mean, cov, _, _ = stats
    chol = torch.linalg.cholesky(cov.double() + 1e-4 * torch.eye(cov.shape[-1], dtype=torch.float64)).float()
    gen = torch.Generator().manual_seed(seed + 12345)  # unseen sampling seed
    n = 1000
    y = torch.arange(n) % 10
    with torch.no_grad():
        w = mean[y] + torch.einsum("nij,nj->ni", chol[y], torch.randn(n, mean.shape[1], generator=gen))
        s_fit = G.decode(w, y)
        s_prior = G.decode(torch.randn(n, mean.shape[1], generator=gen), y)
        acc_fit = float((cnn(s_fit).argmax(1) == y).float().mean())
        acc_fit_mlp = float((mlp(s_fit).argmax(1) == y).float().mean())
        acc_prior = float((cnn(s_prior).argmax(1) == y).float().mean())
        yt = torch.as_tensor(y_test)
        mu, _ = G.encode(torch.as_tensor(x_test)[:, None], yt)
        rec = G.decode(mu, yt)[:, 0].numpy()
    mse = ((rec - x_test) ** 2).mean((1, 2)) / 4  # [0, 1] units
    f_test = _features(cnn, x_test)
    fd_gen = frechet(_features(cnn, s_fit[:, 0].numpy()[: len(x_test)]), f_test)
    fd_blur = frechet(_features(cnn, _blur(x_test)), f_test)
    fd_train = frechet(_features(cnn, x_train[: len(x_test)]), f_test)
    return {
        "gen_class_acc_cnn": acc_fit,
        "gen_class_acc_mlp": acc_fit_mlp,
        "gen_class_acc_cnn_prior_samples": acc_prior,
        "encoder_recon_psnr_db": float(np.mean(10 * np.log10(1 / np.maximum(mse, 1e-12)))),
        "fd_cnn_features_generated": fd_gen,
        "fd_cnn_features_train_real": fd_train,
        "fd_cnn_features_blurred_test": fd_blur,
    }


def train(steps=None, device=None, seed=0, resume=False, progress=None, n_eval: int = N_EVAL,
          n_sweep: int = N_SWEEP, sweep=SWEEP, checkpoint_dir=None, state_name: str = NAME) -> dict:

    from backend.apt import nets
    from backend.apt.data import split_arrays
    from backend.apt.model import CVAE, build
    from backend.core import (
        as_progress,
        clear_cache,
        get_device,
        load_train_state,
        save_checkpoint,
        save_train_state,
        set_seed,
    )

    steps = int(steps or DEFAULT_STEPS)
    dev = get_device(device)
    p = as_progress(progress)
    t_start = time.time()
    x_train, y_train = split_arrays("train")
    x_test, y_test = split_arrays("test")
    state = (load_train_state(state_name) if resume else None) or {}
    if state and (state.get("steps") != steps or state.get("seed") != seed):
        state = {}  # a different run: start over
    state.setdefault("steps", steps)
    state.setdefault("seed", seed)
    state.setdefault("done", {})
    state.setdefault("wall", {})
    state.setdefault("eval_rows", {})
    stage_steps = {st[0]: max(1, int(round(st[3] * steps))) for st in STAGES}
    offsets = np.cumsum([0] + [stage_steps[st[0]] for st in STAGES])
    total = int(offsets[-1]) + 1
    trained = {}
    for i, (stage, kind, off, _share) in enumerate(STAGES):
        s_seed = seed * 100 + off
        n_steps = stage_steps[stage]
        if stage in state["done"]:
            m = build(state["done"][stage]["config"])
            m.load_state_dict(state["done"][stage]["state"])
            trained[stage] = m.to(dev).eval()
            continue
        set_seed(s_seed)
        model = CVAE() if kind == "generator" else nets.make_classifier(kind)
        model = model.to(dev)
        start, opt_state = 0, None
        cur = state.get("current")
        if cur and cur.get("stage") == stage:
            model.load_state_dict(cur["model"])
            start, opt_state = cur["step"], cur["opt"]
        t0 = time.time() - (cur or {}).get("elapsed", 0.0) if cur and cur.get("stage") == stage else time.time()

        def on_step(k, loss, opt, stage=stage, model=model, t0=t0, i=i, n_steps=n_steps):
            p.update(int(offsets[i]) + k, total, f"{stage}: step {k}/{n_steps} loss {loss:.3f}")
            if k % 200 == 0 and k < n_steps:
                state["current"] = {"stage": stage, "step": k, "model": model.state_dict(), "opt": opt.state_dict(),
                                    "elapsed": time.time() - t0}
                save_train_state(state_name, state)

        if kind == "generator":
            # plain cVAE (beta = 1); the perceptual net is not used here, so G owes nothing to a classifier
            nets.train_cvae(model, x_train, y_train, n_steps, s_seed, device=dev, start_step=start,
                            opt_state=opt_state, on_step=on_step)
        else:
            nets.train_classifier(model, x_train, y_train, n_steps, s_seed, device=dev,
                                  adv_eps01=ROBUST_EPS if kind == "robust" else 0.0, start_step=start,
                                  opt_state=opt_state, on_step=on_step)
        model.eval()
        trained[stage] = model
        state["done"][stage] = {"config": model.config, "state": {k: v.cpu() for k, v in model.state_dict().items()}}
        state["wall"][stage] = time.time() - t0
        state.pop("current", None)
        save_train_state(state_name, state)

    for m in trained.values():
        m.cpu().eval().requires_grad_(False)
    G, P, cnn, mlp, robust = (trained[k] for k in ("generator", "perceptual", "cnn", "mlp", "robust"))
    clf = {"cnn": cnn, "mlp": mlp, "robust": robust}
    p.update(total - 1, total, "evaluating classifiers")
    acc = {k: nets.accuracy(v, x_test, y_test) for k, v in clf.items()}
    acc["perceptual"] = nets.accuracy(P, x_test, y_test)
    pgd_acc = {k: nets.pgd_accuracy(v, x_test, y_test, ROBUST_EPS, steps=40, seed=seed + 777) for k, v in clf.items()}
    from sklearn.linear_model import LogisticRegression

    logreg = LogisticRegression(max_iter=3000).fit(x_train.reshape(len(x_train), -1), y_train)
    logreg_acc = float(logreg.score(x_test.reshape(len(x_test), -1), y_test))
    stats = _latent_stats(G, x_train, y_train, "cpu")
    gen_metrics = _generator_metrics(G, cnn, mlp, stats, x_train, x_test, y_test, seed)

    common = {
        "data": "scikit-learn load_digits (1,797 8×8 scans), /16, bilinear to 32×32, [-1, 1]; stratified split "
                "random_state=0: 1,347 train / 450 test",
        "seed": seed, "steps": steps, "stage_steps": stage_steps, "device": str(dev),
        "command": f"python -m backend.train apt --steps {steps} --seed {seed}",
    }
    wall = float(sum(state["wall"].values()))
    for name in ("cnn", "mlp", "robust"):
        m = clf[name]
        card = dict(common)
        card.update({
            "config": {**m.config, "optimizer": "Adam 1e-3, cosine decay, batch 64, ±2 px shift augmentation",
                       **({"adversarial_training": f"PGD-7 at eps {ROBUST_EPS} ([0, 1] units), half of each "
                                                   f"batch, step 2.5·eps/7"} if name == "robust" else {})},
            "why": "32×32 grey digits are the APT page's resolution; small nets train in seconds on one CPU "
                   "thread and are fast enough to attack interactively.",
            "wall_time_s": float(state["wall"][name]),
            "metrics": {"test_acc": acc[name], f"pgd40_acc_eps{ROBUST_EPS}": pgd_acc[name]},
            "baselines": {"logreg_pixels_test_acc": logreg_acc, f"cnn_pgd40_acc_eps{ROBUST_EPS}": pgd_acc["cnn"]},
            "headline": {"metric": "test_acc", "label": f"{name.upper()} test accuracy", "value": acc[name],
                         "baseline": logreg_acc, "baseline_label": "logistic regression on pixels"},
            "n_eval": len(x_test),
        })
        save_checkpoint(f"apt-{name}", {"config": m.config, "state": m.state_dict(), "name": name}, card,
                        directory=checkpoint_dir)
    mean, cov, dirs, stds = stats
    gpay = {"config": G.config, "state": G.state_dict(), "perceptual_config": P.config,
            "perceptual_state": P.state_dict(), "class_mean": mean, "class_cov": cov, "class_dirs": dirs,
            "class_dir_std": stds}
    gcard = dict(common)
    gcard.update({
        "config": {**G.config, "loss": "summed-pixel MSE + KL (beta 1)", "optimizer": "Adam 1e-3, cosine decay",
                   "perceptual_net": P.config, "sampling": "per-class Gaussian fitted to encoder means (train)"},
        "why": "A cVAE decoder is a small class-conditional generator that trains reliably on CPU; its encoder "
               "gives the pivot initialisation (as e4e does for PTI). LPIPS needs ImageNet weights, so the "
               "perceptual distance uses a project-trained digit CNN P (not an attacked classifier).",
        "wall_time_s": wall,
        "metrics": {**gen_metrics, "perceptual_net_test_acc": acc["perceptual"]},
        "baselines": {"fd_cnn_features_blurred_test": gen_metrics["fd_cnn_features_blurred_test"],
                      "gen_class_acc_chance": 0.1},
        "headline": {"metric": "gen_class_acc_cnn", "label": "CNN accuracy on generated digits",
                     "value": gen_metrics["gen_class_acc_cnn"], "baseline": 0.1, "baseline_label": "chance"},
        "n_eval": 1000,
    })
    save_checkpoint("apt-generator", gpay, gcard, directory=checkpoint_dir)
    if n_eval <= 0:
        return gcard

    # ---- attack evaluation through the public API (loads the checkpoints just written)
    from backend.apt import api

    clear_cache()
    # results already computed with the same settings are kept on --resume (the sweep ignores adv_weight)
    settings = vars(api._settings(None))
    fp = {"main": json.dumps([settings, n_eval, api.DEFAULT_EPS]),
          "sweep": json.dumps([{k: v for k, v in settings.items() if k != "adv_weight"}, n_sweep])}
    old_fp = state.get("eval_fingerprints") or {}
    rows = state["eval_rows"]
    for part in ("main", "sweep"):
        if old_fp.get(part) != fp[part]:
            for k in [k for k in rows if k.startswith("sweep:") == (part == "sweep")]:
                del rows[k]
    state["eval_fingerprints"] = fp
    jobs = [("attacks", c) for c in api.CLASSIFIERS] + [(f"sweep:{w}", c) for c in SWEEP_CLASSIFIERS for w in sweep]
    for n_done, (job, c) in enumerate(jobs, 1):
        key = f"{job}|{c}"
        p.update(total - 1, total, f"attack evaluation {n_done}/{len(jobs)}: {key}")
        if key in rows:
            continue
        if job.startswith("sweep:"):
            w = float(job.split(":")[1])
            r = api.batch_evaluate(n_sweep, seed=EVAL_SEED, classifiers=[c], modes=("apt",), adv_weight=w)[0]
            r["adv_weight"] = w
            rows[key] = r
        else:
            for r in api.batch_evaluate(n_eval, seed=EVAL_SEED, classifiers=[c], modes=("apt", "pgd", "apt+pgd")):
                rows[f"{r['mode']}|{c}"] = r
            rows[key] = True
        save_train_state(state_name, state)
    eval_rows = [rows[f"{m}|{c}"] for m in ("apt", "pgd", "apt+pgd") for c in api.CLASSIFIERS]
    sweep_rows = [rows[f"sweep:{w}|{c}"] for c in SWEEP_CLASSIFIERS for w in sweep]
    fr = {(r["mode"], r["classifier"]): r for r in eval_rows}
    eps_tag = f"eps{api.DEFAULT_EPS}"
    attack_metrics = {}
    for (mode, c), r in fr.items():
        tag = mode.replace("+", "_")
        attack_metrics[f"{tag}_fooling_rate_{c}"] = r["fooling_rate"]
        attack_metrics[f"{tag}_ssim_{c}"] = r["ssim"]
    apt_cnn = fr[("apt", "cnn")]
    attack_metrics["apt_pivot_psnr_db"] = apt_cnn.get("pivot_psnr", float("nan"))
    attack_metrics["apt_high_freq_share_cnn"] = apt_cnn["high_freq_share"]
    attack_metrics["pgd_high_freq_share_cnn"] = fr[("pgd", "cnn")]["high_freq_share"]
    attack_metrics["apt_sec_per_image_cnn"] = apt_cnn["sec_per_image"]
    attack_metrics["apt_rmse_change_other_latents_cnn"] = apt_cnn.get("rmse_change_other_latents", float("nan"))
    gcard["metrics"].update(attack_metrics)
    gcard["baselines"].update({f"pgd_{eps_tag}_fooling_rate_{c}": fr[("pgd", c)]["fooling_rate"]
                               for c in api.CLASSIFIERS})
    gcard["attack_eval"] = {"n_images": n_eval, "test_set_seed": EVAL_SEED, "eps": api.DEFAULT_EPS,
                            "rows": eval_rows, "apt_settings": vars(api._settings(None)),
                            "counting": "fooling rate among images whose original (and, for APT, pivot) the "
                                        "attacked classifier got right"}
    gcard["sweep"] = {"n_images": n_sweep, "classifiers": list(SWEEP_CLASSIFIERS), "rows": sweep_rows}
    rob = fr[("apt", "robust")]
    gcard["headline"] = {"metric": "apt_fooling_rate_robust",
                         "label": f"APT fools the PGD-trained CNN ({rob['n_eligible']} test digits)",
                         "value": rob["fooling_rate"], "baseline": fr[("pgd", "robust")]["fooling_rate"],
                         "baseline_label": f"PGD-40 at its training eps {api.DEFAULT_EPS}"}
    gcard["wall_time_s"] = time.time() - t_start if not resume else wall + (time.time() - t_start)
    save_checkpoint("apt-generator", gpay, gcard, directory=checkpoint_dir)
    for c in api.CLASSIFIERS:
        card = api.load_models().cards[c]
        card["metrics"].update({"apt_fooling_rate": fr[("apt", c)]["fooling_rate"],
                                "apt_ssim": fr[("apt", c)]["ssim"],
                                f"pgd_{eps_tag}_fooling_rate": fr[("pgd", c)]["fooling_rate"],
                                f"apt_pgd_{eps_tag}_fooling_rate": fr[("apt+pgd", c)]["fooling_rate"]})
        card["attack_eval_n"] = fr[("apt", c)]["n_eligible"]
        for k in ("file", "size_bytes"):
            card.pop(k, None)
        save_checkpoint(f"apt-{c}", {"config": clf[c].config, "state": clf[c].state_dict(), "name": c}, card,
                        directory=checkpoint_dir)
    clear_cache()
    p.update(total, total, "done")
    return gcard


TRAINERS = {"apt": train}
