"""Validation and held-out evaluation of a Slot Attention network (used by the recipes in `train.py`).

- The readout (attention iterations at inference x duplicate-slot merging threshold) is chosen on validation
  scenes (seed VAL_SEED) by FG-ARI + mIoU (`readout_grid`, `best_readout`); snapshots are scored the same way.
- The held-out evaluation (`held_out`) scores that readout on the test scenes (seed TEST_SEED, used once per
  shipped checkpoint): FG-ARI, ARI, mIoU and MSE, the same without merging, the paper's readout (training's
  iterations, no merging), the posterior readout and test-time averaging; next to the k-means baseline and the true
  pixel coverage read out as masks. The shipped readout, the paper's readout and k-means are also scored on the
  shifted test scenes (`make_scenes(dist="shifted")`, wider ranges than training, same seed), each with a 95 %
  bootstrap interval over scenes.
"""

from __future__ import annotations

import numpy as np

from backend.slots.data import TEST_SEED, coverage_masks, make_scenes, scene_coverage
from backend.slots.inference import SlotModel, merge_duplicate_slots, posterior_masks
from backend.slots.metrics import KMEANS_POS_WEIGHT, ari_per_image, bootstrap_ci, kmeans_segment, miou_per_image

VAL_SEED = 20_000
MERGE_TAUS = (None, 0.95, 0.9, 0.8, 0.7)  # candidate merging thresholds (None: no merging)
EXTRA_ITERS = 2  # the readout may iterate up to this many times more than training


def score_scenes(model: SlotModel, images, labels, seed: int = 0, passes: int = 1) -> dict:
    """FG-ARI, ARI, mIoU, MSE (on [0,1] pixels) of a SlotModel on given scenes, the per-image FG-ARI and mIoU,
    and the segmentation itself (`seg`)."""
    out = model.segment(images, seed=seed, passes=passes)
    fg = ari_per_image(labels, out.masks, True)
    mi = miou_per_image(labels, out.masks)
    mse = ((out.recon.astype(np.float32) - images.astype(np.float32)) / 255.0) ** 2
    return {"fg_ari": float(fg.mean()), "ari": float(ari_per_image(labels, out.masks, False).mean()),
            "miou": float(mi.mean()), "mse": float(mse.mean()), "per_image_fg_ari": fg, "per_image_miou": mi,
            "seg": out}


def readout_grid(net, device, images, labels) -> dict:
    """(iterations, threshold) -> validation FG-ARI, mIoU (rounded to 4 digits, so near-ties go to the simpler
    readout) and MSE, for training's iterations up to EXTRA_ITERS more and each threshold of MERGE_TAUS."""
    grid = {}
    train_iters = int(net.config["iters"])
    for it in range(train_iters, train_iters + EXTRA_ITERS + 1):
        seg = SlotModel(net, device, iters=it).segment(images, seed=0, merge=False)
        mse = float((((seg.recon.astype(np.float32) - images.astype(np.float32)) / 255.0) ** 2).mean())
        for tau in MERGE_TAUS:
            mk = seg.masks if tau is None else merge_duplicate_slots(seg.masks, tau)[0]
            grid[(it, tau)] = {"fg_ari": round(float(ari_per_image(labels, mk, True).mean()), 4),
                               "miou": round(float(miou_per_image(labels, mk).mean()), 4), "mse": mse}
    return grid


def best_readout(grid: dict) -> tuple:
    """The (iterations, threshold) with the best FG-ARI + mIoU; ties: the fewest iterations, then no merging, then
    the strictest threshold (the grid's order)."""
    return max(grid, key=lambda key: grid[key]["fg_ari"] + grid[key]["miou"])


def validation_scores(net, device, images, labels) -> dict:
    """A snapshot's scores: its best readout's FG-ARI + mIoU as "score", that readout, and the plain readout
    (training's iterations, no merging)."""
    grid = readout_grid(net, device, images, labels)
    it, tau = best_readout(grid)
    plain = grid[(int(net.config["iters"]), None)]
    best = grid[(it, tau)]
    return {"score": best["fg_ari"] + best["miou"], "val_fg_ari": plain["fg_ari"], "val_miou": plain["miou"],
            "val_mse": plain["mse"], "val_readout_fg_ari": best["fg_ari"], "val_readout_miou": best["miou"],
            "val_readout_iters": it, "val_readout_merge": tau}


def with_interval(labels, masks) -> dict:
    """Mean FG-ARI and mIoU over scenes, each with its 95 % bootstrap interval (`_lo`, `_hi`)."""
    out = {}
    for key, per_image in (("fg_ari", ari_per_image(labels, masks, True)), ("miou", miou_per_image(labels, masks))):
        lo, hi = bootstrap_ci(per_image)
        out |= {key: float(per_image.mean()), f"{key}_lo": lo, f"{key}_hi": hi}
    return out


def readouts_with_intervals(net, device, variant: str, images, labels, iters: int, merge) -> dict:
    """The shipped readout (`iters`, `merge`), the paper's readout (training's iterations, no merging) and k-means
    on the same scenes, each scored by `with_interval`."""
    km = kmeans_segment(images, k=int(net.config["num_slots"]), pos_weight=KMEANS_POS_WEIGHT[variant], seed=0)
    shipped = SlotModel(net, device, iters=iters, merge=merge).segment(images, seed=0).masks
    paper = SlotModel(net, device).segment(images, seed=0, merge=False).masks
    return {"shipped": with_interval(labels, shipped), "paper": with_interval(labels, paper),
            "kmeans": with_interval(labels, km)}


def _reference_scores(variant: str, images, labels, n: int, res: int, num_slots: int, seed: int) -> dict:
    """The k-means baseline and the true coverage read out as masks (by majority, and objects first)."""
    km = kmeans_segment(images, k=num_slots, pos_weight=KMEANS_POS_WEIGHT[variant], seed=0)
    cov = scene_coverage(n, seed=seed, variant=variant, res=res)
    out = {"kmeans": {"ari": float(ari_per_image(labels, km, False).mean()), **with_interval(labels, km)}}
    for key, objects_first in (("coverage_majority", False), ("coverage_objects_first", True)):
        mk = coverage_masks(cov, objects_first)
        out[key] = {"fg_ari": float(ari_per_image(labels, mk, True).mean()),
                    "miou": float(miou_per_image(labels, mk).mean())}
    return out


def validation_grid(net, device, variant: str, n_val: int, dists=("standard",)) -> dict:
    """`readout_grid` on `n_val` validation scenes of each scene distribution in `dists`, averaged over them."""
    grids = []
    for d in dists:
        imgs, labels, _ = make_scenes(n_val, seed=VAL_SEED, variant=variant, res=net.resolution, dist=d)
        grids.append(readout_grid(net, device, imgs, labels))
    return {key: {k: round(float(np.mean([g[key][k] for g in grids])), 4) for k in grids[0][key]} for key in grids[0]}


def held_out(net, device, variant: str, n_val: int, n_test: int, passes: int, test_seed: int = TEST_SEED,
             val_dists=("standard",)) -> dict:
    """The readout chosen on `n_val` validation scenes of each of `val_dists`, then the scores of the module
    docstring on `n_test` test scenes: {"readout", "grid", "metrics", "baselines", "intervals", "test_seed"}."""
    res = net.resolution
    grid = validation_grid(net, device, variant, n_val, val_dists)
    it, tau = best_readout(grid)
    imgs, labels, _ = make_scenes(n_test, seed=test_seed, variant=variant, res=res)
    m = score_scenes(SlotModel(net, device, iters=it, merge=tau), imgs, labels)
    plain = score_scenes(SlotModel(net, device), imgs, labels)
    unmerged = m if tau is None else score_scenes(SlotModel(net, device, iters=it), imgs, labels)
    post = posterior_masks(imgs, m["seg"])
    metrics = {
        "fg_ari": m["fg_ari"], "ari": m["ari"], "miou": m["miou"], "mse": m["mse"],
        "fg_ari_median": float(np.median(m["per_image_fg_ari"])),
        "frac_fg_ari_above_0.9": float((m["per_image_fg_ari"] >= 0.9).mean()),
        "fg_ari_at_train_iters": plain["fg_ari"], "miou_at_train_iters": plain["miou"],
        "fg_ari_no_merge": unmerged["fg_ari"], "miou_no_merge": unmerged["miou"],
        "fg_ari_posterior": float(ari_per_image(labels, post, True).mean()),
        "miou_posterior": float(miou_per_image(labels, post).mean()),
    }
    if passes > 1:  # test-time averaging (off with passes=1, which skips its cost)
        avg = score_scenes(SlotModel(net, device, iters=it, merge=tau), imgs, labels, passes=passes)
        metrics |= {f"fg_ari_passes{passes}": avg["fg_ari"], f"miou_passes{passes}": avg["miou"],
                    f"mse_passes{passes}": avg["mse"]}
    shifted_imgs, shifted_labels, _ = make_scenes(n_test, seed=test_seed, variant=variant, res=res, dist="shifted")
    intervals = {
        "test": {"shipped": with_interval(labels, m["seg"].masks), "paper": with_interval(labels, plain["seg"].masks)},
        "shifted": readouts_with_intervals(net, device, variant, shifted_imgs, shifted_labels, it, tau),
    }
    baselines = _reference_scores(variant, imgs, labels, n_test, res, int(net.config["num_slots"]), test_seed)
    intervals["test"]["kmeans"] = {k: v for k, v in baselines["kmeans"].items() if k != "ari"}
    return {"readout": {"iters": it, "merge": tau}, "resolution": res, "test_seed": test_seed,
            "grid": [{"iters": i, "merge": t, **{k: round(v, 5) for k, v in s.items()}} for (i, t), s in grid.items()],
            "metrics": metrics, "baselines": baselines, "intervals": intervals}
