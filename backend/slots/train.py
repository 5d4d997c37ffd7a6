"""Trainers for the shipped Slot Attention checkpoints (`python -m backend.train slots-sprites`).

Unsupervised: reconstruction MSE (plus, in a "sharpen" phase, the alpha masks' per-pixel entropy, and in a "distill"
phase the KL from a frozen copy's test-time-averaged masks of the same scenes, `distill_loss`; no labels). Adam
with linear warm-up and cosine decay per phase, gradient-norm clipping, a fixed pool of generated training scenes
(seeds >= TRAIN_SEED_BASE) with random flips.
Every `eval_every` steps the model is scored on 256 validation scenes (seed VAL_SEED) and probed; the shipped
weights are the snapshot with the best validation FG-ARI + mIoU of its best readout (`snapshot_score`; never chosen
by loss, see notes; only its weights and step 0's are kept), and that readout (the attention iterations and the
duplicate-slot merging threshold at inference) is chosen on the same scenes. The card reports FG-ARI, ARI, mIoU and
MSE on 1,000 held-out test scenes (seed EVAL_SEED), the same without merging, with the posterior readout and with
test-time averaging over AVG_PASSES passes, the k-means baseline and the true pixel coverage read out as masks
(`coverage_masks`) on the same scenes, and per-snapshot metrics with the property probe (for the
downstream-vs-segmentation plot).
"""

from __future__ import annotations

import copy
import math
import time

import numpy as np

from backend.core import (
    as_progress,
    get_device,
    load_train_state,
    run_stages,
    save_checkpoint,
    save_train_state,
    set_seed,
)
from backend.slots.data import EVAL_SEED, TRAIN_SEED_BASE, coverage_masks, make_scenes, scene_coverage
from backend.slots.metrics import KMEANS_POS_WEIGHT

VAL_SEED = 20_000
# candidate duplicate-slot merging thresholds at inference (None: no merging), one chosen on validation scenes
MERGE_TAUS = (None, 0.95, 0.9, 0.8, 0.7)
# test-time averaging the card also reports (`segment(passes=...)`: 4 slot initialisations x the mirror image)
AVG_PASSES = 8
N_VAL = 256
N_TEST = 1000

RUNS = {
    # at step 11000 the decoder is grown by two identity-initialised full-resolution residual blocks (the
    # 8x8-broadcast decoder draws blobs: objects' shapes, not their places, limited FG-ARI), a fresh Adam and a
    # new warm-up + cosine schedule over the remaining steps. Default steps = the shipped total, so a fresh run (e.g.
    # `backend.train all` on a new machine) grows the decoder too and slots-textured can start from its weights
    # at step 19000 (fifth sitting, the first with a GPU) the run is scaled up: batch 128 (a GPU step of this small
    # model costs about the same at 32 or 128 scenes), a 50k-scene pool (a superset of the first 5k: scene i is
    # seeded by [seed, i]) and a new warm-up + cosine schedule over the remaining steps; the Adam state is kept
    # from step 39000 (sixth sitting, CPU) the masks are sharpened: the loss adds the alpha masks' per-pixel entropy
    # across slots (weight 0.005) so each pixel, the plain background included, goes to one slot; batch 32, a new
    # warm-up + cosine from 5e-5, the same pool and Adam state
    # from step 43000 (seventh sitting, CPU) self-distillation: the best snapshot so far, frozen, segments the first
    # 6000 pool scenes once with 8-pass test-time averaging (4 initialisations x the mirror; it beats one pass on
    # validation) and the loss adds 0.02 x the per-pixel KL from those masks to the model's (slots matched per image);
    # at step 46000 a second round: the best snapshot then (the distilled model) becomes the teacher
    # from step 47500 (eighth sitting, CPU) a third round with its own warm-up + cosine from 3e-5; from here snapshots
    # are scored on the readout that ships (`snapshot_score`: best iterations and duplicate merging on validation)
    "slots-sprites": {"variant": "sprites", "steps": 50500, "pool": 5000, "train": {"batch_size": 32},
                      "grow": {"at": 11000, "config": {"dec_refine": 2}, "lr": 3e-4, "warmup": 100},
                      "scale": {"at": 19000, "pool": 50000, "lr": 3e-4, "warmup": 200,
                                "train": {"batch_size": 128, "eval_every": 2500, "save_every": 1000}},
                      "sharpen": {"at": 39000, "lr": 5e-5, "warmup": 200,
                                  "train": {"batch_size": 32, "mask_entropy": 0.005, "eval_every": 500,
                                            "save_every": 100}},
                      "distill": {"at": 43000, "lr": 5e-5, "warmup": 100, "pool": 6000, "teacher_passes": 8,
                                  "teacher_iters": 4, "refresh_at": [46000],
                                  "rounds": [{"at": 47500, "lr": 3e-5, "warmup": 100}],
                                  "train": {"batch_size": 32, "mask_entropy": 0.0, "distill": 0.02, "eval_every": 500,
                                            "save_every": 100}},
                      "why": " Seventh sitting (CPU, no training): where is the FG-ARI target? The card now gives a "
                             "ceiling: the true anti-aliased coverage of each pixel (`scene_coverage`, the share of "
                             "its 4x4 drawing samples each object covers) used as masks scores FG-ARI 0.919 on the "
                             "test scenes, since a label takes one sample per pixel and the image cannot tell where "
                             "that sample fell on an edge pixel. The target 0.90 is 98 % of it, and the tuned k-means "
                             "(0.894) is close to it on these flat, well-separated colours. On the validation scenes "
                             "giving every edge-adjacent object pixel its object's slot would lift the model's FG-ARI "
                             "from 0.874 to 0.976, fixing the interior pixels only to 0.884: the alpha masks follow "
                             "the coverage at edges but noisily (of object pixels 50-75 % covered, 30 % get a mask "
                             "below 0.5). Probes that did not close it: 6 or 7 slots at inference (validation FG-ARI "
                             "0.859, 0.841 merged, vs 0.872), shifting the masks by a quarter pixel (+0.007 at best: "
                             "no systematic offset). What helped is averaging: the alpha masks of several passes (slot "
                             "initialisations, each on the image and its mirror; slots matched by Hungarian matching "
                             "of their masks; duplicates merged in each pass and after) give validation FG-ARI 0.886 / "
                             "0.890 / 0.894 and mIoU 0.838 / 0.852 / 0.858 at 2 / 4 / 8 passes (one pass: 0.872 / "
                             "0.818). `segment(passes=...)` offers it; the card's `*_passes8` metrics are the test "
                             "scores at 8 passes. The default stays one pass (8 passes cost 8x, beyond the latency "
                             "targets) and the headline and targets use it. Since averaging beats one pass, from step "
                             "43000 the model is distilled towards it (no labels): the best snapshot so far (41500), "
                             "frozen, segments the first 6000 pool scenes once with 8 passes at 4 iterations, and the "
                             "loss adds 0.02 x the per-pixel KL from those masks to the model's (slots matched per "
                             "image by Hungarian matching, `distill_loss`), batch 32, a 100-step warm-up to 5e-5 and "
                             "a cosine decay, no entropy term. Validation FG-ARI (3 iterations, no merging) went "
                             "0.855 (43000) -> 0.861 -> 0.869 -> 0.881 -> 0.884 (45000), mIoU 0.693 -> 0.715. The "
                             "distilled masks showed that summing duplicate slots' masks costs FG-ARI (validation, "
                             "step 44100, 4 iterations: 0.896 unmerged, 0.872 merged at any threshold): a background "
                             "split over duplicates, summed, outvotes an object on edge pixels that no single "
                             "duplicate wins. `merge_duplicate_slots` now gives the merged slot its strongest "
                             "member's mask and renormalises, so every pixel keeps the slot that won it, renamed: "
                             "0.901 / 0.831 there (and 0.883 / 0.811 for the 41500 model, whose summed merge gave "
                             "0.872 / 0.818). The attention iterations and the threshold are now chosen together "
                             "on the "
                             "validation scenes (`inference_validation`; before, the iterations were chosen first "
                             "without merging, then the threshold). A second round (`refresh_at` 46000: the 46000 "
                             "model, whose 8-pass masks score held-out FG-ARI 0.905, became the teacher) ran 1500 "
                             "steps: validation FG-ARI (3 iterations, unmerged) 0.881 -> 0.888 / 0.896 / 0.893 but "
                             "mIoU 0.727 -> 0.695 / 0.692 / 0.694, so by the snapshot rule the 46000 model stays "
                             "shipped. Eighth sitting (CPU). (1) The snapshot rule now scores the readout that ships. "
                             "Since the seventh sitting the checkpoint ships with the attention iterations and the "
                             "duplicate merging chosen on validation, yet snapshots were still compared on unmerged "
                             "masks at training's 3 iterations, which penalises a model for splitting the plain "
                             "background over duplicate slots that the shipped readout merges. Each snapshot is now "
                             "scored by its best (iterations, merging) readout on the validation scenes "
                             "(`snapshot_score`). I changed the rule after seeing round 2's unmerged scores: scored "
                             "this way the 46000 model reads 0.905 / 0.830 and the 47500 model 0.912 / 0.831, so "
                             "47500 became the best (older snapshots' weights were gone; they keep their plain "
                             "scores, each below its own readout score). (2) The card's former 'ceiling' was not a "
                             "bound: FG-ARI ignores background-labelled pixels, so the same true coverage with every "
                             "pixel an object touches given to the objects scores FG-ARI 0.985 (mIoU 0.842); the card "
                             "now gives both coverage readouts as references (`coverage`). (3) A third round "
                             "(`rounds`, from step 47500: the 47500 model's 8-pass masks at 4 iterations as the "
                             "teacher, its own 100-step warm-up to 3e-5 and a cosine over 3000 steps). Validation "
                             "readout FG-ARI / mIoU: 0.904 / 0.827 (48000), 0.912 / 0.819, 0.916 / 0.830 (49000), "
                             "0.911 / 0.826, 0.912 / 0.832, 0.918 / 0.829 (50500, selected: 1.747 against 1.746 at "
                             "49000). Unmerged mIoU stays at 0.65-0.66: the distilled model splits the background "
                             "over duplicate slots, which the merging undoes."},
    # textured scenes start from the flat-sprites model (a curriculum: flat objects first, then textures)
    # (fifth sitting: the same scale-up as the sprites run, batch 128 and a 50k-scene pool)
    # (sixth sitting: the same mask sharpening as the sprites run, resumed from step 4000 on CPU)
    # (eighth sitting: self-distillation from step 5500 towards the best snapshot's shipped readout, averaged: 8
    # passes at its chosen 5 iterations with duplicates merged at its chosen 0.7, on the first 6000 pool scenes)
    "slots-textured": {"variant": "textured", "steps": 7500, "pool": 50000, "init_from": "slots-sprites",
                       "config": {"dec_refine": 2},
                       "train": {"batch_size": 128, "warmup": 200, "eval_every": 1000, "save_every": 1000},
                       "sharpen": {"at": 4000, "lr": 5e-5, "warmup": 200,
                                   "train": {"batch_size": 32, "mask_entropy": 0.005, "eval_every": 250,
                                             "save_every": 100}},
                       "distill": {"at": 5500, "lr": 5e-5, "warmup": 100, "pool": 6000, "teacher_passes": 8,
                                   "teacher_iters": 5, "teacher_merge": 0.7,
                                   "train": {"batch_size": 32, "mask_entropy": 0.0, "distill": 0.02,
                                             "eval_every": 500, "save_every": 100}},
                       "why": " Sixth sitting (CPU): the same mask-sharpening phase as slots-sprites from step 4000 "
                              "to 5500 (batch 32, a new 200-step warm-up to 5e-5, entropy weight 0.005). Validation "
                              "mIoU went 0.53 -> 0.57 at step 4500 (selected) and then eased to 0.54, while FG-ARI "
                              "dipped to 0.71 and came back to 0.74-0.76: a smaller gain than on flat sprites. "
                              "Eighth sitting (CPU): snapshots are now scored on the readout that ships (see "
                              "slots-sprites; on resume the 4500 model read 0.771 / 0.660 and the 5500 model 0.758 / "
                              "0.597 on validation, so 4500 stayed). Then self-distillation from step 5500 to 7500: "
                              "the 4500 model, frozen, segments the first 6000 pool scenes once with its shipped "
                              "readout averaged (8 passes at 5 iterations, duplicates merged at 0.7, so a background "
                              "is one slot in the targets) and the loss adds 0.02 x the per-pixel KL from those masks "
                              "(batch 32, a 100-step warm-up to 5e-5, a cosine, no entropy term). Validation readout "
                              "FG-ARI / mIoU: 0.764 / 0.692 (6000), 0.778 / 0.703 (6500, selected), 0.768 / 0.697, "
                              "0.773 / 0.697 (7500)."},
}
TRAIN_CONFIG = {
    "batch_size": 16,
    "lr": 4e-4,
    "warmup": 300,
    "final_lr_frac": 0.05,
    "clip_grad": 1.0,
    "eval_every": 300,
    "save_every": 100,
    "mask_entropy": 0.0,
}
WHY = (
    "32x32 scenes: on a 2-core CPU shared by six training jobs one step at 64x64 costs 6-12x more (notes §8), and "
    "objects of 20-40 % of the side are still 6-13 px wide at 32x32. Encoder 4 conv5 x 32 channels, 64-d slots, "
    "5 slots (4 objects + background), 3 iterations; 8x8 spatial broadcast + 2 stride-2 transposed convs (2x cheaper "
    "than a full-resolution broadcast), as in the notes' CPU probe. Batch 32, Adam 4e-4, 300-step warm-up, cosine "
    "decay. Earlier batch-16 runs (one with gradients through the last slot iteration only, one at lr 1e-3) stayed "
    "in the uniform-mask plateau (validation FG-ARI < 0.01) for 600-1500 steps and were stopped; the step budget "
    "here is what fitted the wall-clock budget, far below the 500k steps of the paper. Diagnosis (second sitting): "
    "the plateau is the per-image mean colour (training loss 0.138 on [-1,1] pixels equals the MSE of predicting "
    "each image's mean), reached with uniform attention and uniform decoder masks. Short probes (300-800 steps, "
    "batch 32, 1 thread) of the levers in the notes all stayed on it: learned per-slot initial means, 3x3 or 1x1 "
    "encoder kernels, bias terms in k/q/v, cosine attention with a fixed temperature 8, and full-resolution "
    "decoders (conv5, or a per-pixel MLP) which give FG-ARI 0.04-0.10 from the start but then no progress. The "
    "2400-step run was the only one whose validation FG-ARI kept rising, so it was resumed and extended to 8000 "
    "and then 11000 steps (a new cosine schedule at each resume; see note); validation FG-ARI went 0.05 -> 0.39 "
    "(step 4200) -> 0.65 (8000) -> 0.68 (11000). These options stay in the model config (off). Third sitting: at "
    "11000 steps the reconstructions were blobs (hearts and triangles drawn as discs) and an object's pixels went "
    "to its majority slot only 83 % of the time (256 validation scenes; merged objects 5 %, more attention "
    "iterations or slots at test time did not help), so the decoder, not the grouping, limited FG-ARI. The decoder "
    "was grown at step 11000 by two residual conv3 blocks (32 channels) at full resolution before its output conv, "
    "the second conv of each zero-initialised so the grown model computes exactly what the 11000-step one did, "
    "then trained on with a fresh Adam, 100 warm-up steps to 3e-4 and a cosine decay to step 14600 (about 3x the "
    "cost per step). Validation FG-ARI went 0.675 -> 0.70 (12000) and then hovered at 0.68-0.70 while mIoU rose "
    "0.34 -> 0.41 and MSE fell 0.0081 -> 0.0057; merged objects fell from 39 to 25 of 769 and majority-slot purity "
    "stayed near 0.84 (median 0.90): the masks are still soft discs, so the decoder (or the step budget) still limits. "
    "Fourth sitting: resumed to step 19000 (the cosine span after the growth now ends there, so the learning rate "
    "went back up from 1.5e-5 to 1.8e-4 at step 14600 and decayed again). Validation FG-ARI rose to 0.71-0.74 from "
    "step 16200 while mIoU eased from 0.41 to 0.38 and the ARI with background fell (the background is split over "
    "more slots); the linear shape probe rose from 0.42 to 0.54 (chance 0.25). The per-pixel slot posterior given "
    "the image (`posterior_masks`) scored about 0.08 FG-ARI above the alpha masks on validation at step 19000: the "
    "grouping was ahead of the masks' shapes. A 600-step probe of a per-pixel mixture likelihood loss (from the 13800-step "
    "model) raised validation mIoU to 0.43 but cut FG-ARI to 0.60 and was dropped. Fifth sitting, the first with a "
    "GPU (one H200 for 15 minutes; scripts/gpu_slots.sh sizes each stage to a time budget): from step 19000 the run "
    "was scaled up to batch 128 (a GPU step of this model costs about 16 ms at 32 or 128 scenes), a 50k-scene pool "
    "(its first 5k scenes are the earlier pool) and a new 200-step warm-up to 3e-4 with a cosine decay, and resumed "
    "to 31500 and then 39000 steps. Validation FG-ARI went 0.73 -> 0.85 (31500) -> 0.87 (39000), MSE 0.0049 -> "
    "0.0021 and the linear shape probe 0.54 -> 0.82, while mIoU stayed at 0.38-0.43 (the background is split over "
    "slots). The posterior readout no longer beats the alpha masks (validation 0.849 vs 0.864): the masks have "
    "caught up with the grouping. slots-textured was retrained at the same scale (batch 128, 50k textured scenes, "
    "4000 steps, selected by the same rule) from the 35000-step sprites checkpoint: validation FG-ARI 0.53 -> 0.76. "
    "Since then the attention iterations at inference are chosen after training on the validation scenes among 3-5 "
    "by the same rule (Slot Attention may iterate more at test time): 4 for both models (sprites validation FG-ARI "
    "0.864 -> 0.886, mIoU 0.402 -> 0.427); the card's metrics use them and also give the test scores at 3. Sixth "
    "sitting (CPU): the masks were sharpened. On the validation scenes the 39000-step model's slots each took a share "
    "of the plain background around their objects (an object's best slot IoU averaged 0.49, the background's 0.63, "
    "and the largest mask on a background pixel 0.30), which FG-ARI ignores but mIoU counts. From step 39000 the loss "
    "adds 0.005 times the alpha masks' per-pixel entropy across slots (`mask_entropy`), at batch 32 with a new "
    "200-step warm-up to 5e-5 and a cosine decay to step 43000 (the pool and the Adam state are kept); 200-step "
    "probes at weights 0.01 and 0.003 gave the same jump. Validation mIoU went 0.40 -> 0.64 (39500) -> 0.70 (41500, "
    "selected) while FG-ARI dipped to 0.82 and came back to 0.85-0.86; at 4 iterations an object's best slot IoU is "
    "now 0.79 and the background's 0.90, merges are unchanged (12 of 769 objects). What is left is the spare slots: "
    "they still win small patches (median 18 px, often along object edges), each an unmatched segment, so 2-object "
    "scenes show 4.4 non-empty segments for 3 true ones (mIoU 0.59 there, 0.78 on 4-object scenes). Looking at the "
    "masks, those patches are duplicates: on a 2-object scene two or three spare slots are the same slot (same "
    "masks, about 1/2 or 1/3 each over the whole background), so no loss on masks can split them and the argmax "
    "between them is speckle. Since then `segment` merges duplicate slots at inference (`merge_duplicate_slots`: "
    "slots whose masks have cosine similarity above a threshold count as one, their masks summed; distinct objects "
    "have nearly disjoint masks and are not merged; the reconstruction is unchanged). The threshold, or none, is "
    "chosen after training on the validation scenes by the same FG-ARI + mIoU rule among none, 0.95, 0.9, 0.8 and "
    "0.7 (`merge_validation`); the card's metrics use it and `fg_ari_no_merge` / `miou_no_merge` give the plain "
    "argmax. For slots-sprites: validation mIoU 0.696 -> 0.818 at 0.7, FG-ARI 0.873 -> 0.872. The card also gives "
    "the test scores of the posterior readout (`fg_ari_posterior`, `miou_posterior`; the page's 'posterior given the "
    "image'): with sharp, merged masks it is now ahead of the alpha masks (sprites validation FG-ARI 0.929 vs 0.872, "
    "mIoU 0.845 vs 0.818), since 84 % of the object pixels the alpha masks give to another slot lie on object edges, "
    "where the masks are blurred and the pixel's colour decides. The headline and the targets stay on the alpha "
    "masks, the paper's readout."
)


def lr_at(step: int, steps: int, cfg: dict) -> float:
    w = cfg["warmup"]
    if step < w:
        return cfg["lr"] * (step + 1) / w
    t = min(1.0, (step - w) / max(1, steps - w))
    lo = cfg["final_lr_frac"]
    return cfg["lr"] * (lo + (1 - lo) * 0.5 * (1 + math.cos(math.pi * t)))


def phase_lr(step: int, steps: int, tc: dict, grow: dict | None = None, scale: dict | None = None,
             sharpen: dict | None = None, distill: dict | None = None) -> float:
    """The learning rate at `step`: the base schedule spans the whole run; each later phase (the decoder growth
    `grow`, the scale-up `scale`, the mask sharpening `sharpen`, the self-distillation `distill` and each of its
    `rounds`) starts a new warm-up + cosine decay from its own rate that ends where the next phase begins (or at
    `steps`). A `refresh_at` step renews the teacher only; the schedule runs on."""
    phases = sorted([*(ph for ph in (grow, scale, sharpen, distill) if ph), *distill_rounds(distill)],
                    key=lambda ph: ph["at"])
    started = [ph for ph in phases if step >= ph["at"]]
    if not started:
        return lr_at(step, steps, tc)
    ph = started[-1]
    end = min([steps] + [q["at"] for q in phases if q["at"] > ph["at"]])
    return lr_at(step - ph["at"], end - ph["at"], {**tc, "lr": ph["lr"], "warmup": ph["warmup"]})


def distill_rounds(distill: dict | None) -> list:
    """The self-distillation phase's later rounds: each renews the teacher (the best snapshot by then) and starts
    its own warm-up + cosine from its `lr`; a round may also set the teacher's readout (`teacher_passes`,
    `teacher_iters`, `teacher_merge`)."""
    return list((distill or {}).get("rounds", ()))


def distill_in_force(distill: dict, step: int) -> dict:
    """The distillation settings at `step`: the phase's, updated by the latest round started by then."""
    started = [r for r in distill_rounds(distill) if step >= r["at"]]
    return {**distill, **(max(started, key=lambda r: r["at"]) if started else {})}


def readout_grid(net, dev, train_iters: int, images, labels) -> dict:
    """Validation FG-ARI and mIoU of each readout the checkpoint can ship: (attention iterations, training's count
    or up to 2 more) x (duplicate-slot merging threshold in MERGE_TAUS, None: no merging)."""
    from backend.slots.api import SlotModel, merge_duplicate_slots
    from backend.slots.metrics import ari_per_image, miou_per_image

    grid = {}
    for it in range(train_iters, train_iters + 3):
        seg = SlotModel(net, dev, iters=it).segment(images, seed=0, merge=False)
        for tau in MERGE_TAUS:
            mk = seg.masks if tau is None else merge_duplicate_slots(seg.masks, tau)[0]
            grid[(it, tau)] = {"val_fg_ari": round(float(ari_per_image(labels, mk, True).mean()), 4),
                               "val_miou": round(float(miou_per_image(labels, mk).mean()), 4)}
    return grid


def best_readout(grid: dict) -> tuple:
    """The (iterations, threshold) of the grid with the best FG-ARI + mIoU; ties: the fewest iterations, then no
    merging, then the strictest threshold (the grid's order)."""
    return max(grid, key=lambda key: grid[key]["val_fg_ari"] + grid[key]["val_miou"])


def snapshot_score(s: dict) -> float:
    """The snapshot rule: validation FG-ARI + mIoU of the readout the snapshot would ship with (its best attention
    iterations and merging, `readout_grid`; from the eighth sitting). Snapshots validated before that whose weights
    were dropped (so never shippable again) keep the plain score: unmerged masks at training's iterations, one of the
    grid's entries, so never above the readout score of the same weights; a resumed run scores the kept weights."""
    r = s.get("val_readout")
    return r["val_fg_ari"] + r["val_miou"] if r else s["val_fg_ari"] + s["val_miou"]


def evaluate(model, images, labels, seed: int = 0, passes: int = 1) -> dict:
    """FG-ARI, ARI, mIoU, MSE (on [0,1] pixels) of a SlotModel on given scenes, plus per-image arrays and the
    segmentation itself (`_seg`)."""
    from backend.slots.metrics import ari_per_image, miou_per_image

    out = model.segment(images, seed=seed, passes=passes)
    fg = ari_per_image(labels, out.masks, True)
    full = ari_per_image(labels, out.masks, False)
    mi = miou_per_image(labels, out.masks)
    mse = ((out.recon.astype(np.float32) - images.astype(np.float32)) / 255.0) ** 2
    return {"fg_ari": float(fg.mean()), "ari": float(full.mean()), "miou": float(mi.mean()),
            "mse": float(mse.mean()), "_per_image": {"fg_ari": fg, "miou": mi}, "_seg": out}


def _train(name: str, steps=None, device=None, seed: int = 0, resume: bool = False, progress=None,
           pool: int | None = None, n_val: int = N_VAL, n_test: int = N_TEST, config: dict | None = None,
           train_config: dict | None = None, write: bool = True, n_probe: tuple[int, int] = (300, 150),
           grow: dict | None = None, scale: dict | None = None, sharpen: dict | None = None,
           distill: dict | None = None) -> dict:
    import torch

    from backend.slots.api import SlotModel
    from backend.slots.model import DEFAULT_CONFIG, SlotAttentionAE
    from backend.slots.probe import probe_scores

    run = RUNS[name]
    variant = run["variant"]
    steps = int(steps or run["steps"])
    pool = int(pool or run["pool"])
    tc = {**TRAIN_CONFIG, **run.get("train", {}), **(train_config or {})}
    cfg = {**DEFAULT_CONFIG, **run.get("config", {}), **(config or {})}
    p = as_progress(progress)
    dev = get_device(device)
    set_seed(seed)
    t0 = time.time()

    if config is None:  # the run's own decoder growth and scale-up (not applied to test-sized configs)
        grow = run.get("grow") if grow is None else grow
        scale = run.get("scale") if scale is None else scale
        sharpen = run.get("sharpen") if sharpen is None else sharpen
        distill = run.get("distill") if distill is None else distill
    grown_cfg = {**cfg, **grow["config"]} if grow else cfg
    net = SlotAttentionAE(cfg).to(dev)
    init_state = copy.deepcopy(net.state_dict())  # untrained weights: the probe's lower-bound reference
    warm = run.get("init_from")
    opt = torch.optim.Adam(net.parameters(), lr=tc["lr"])
    start, snapshots, best = 0, [], None
    stages, command, note = run_stages(name, seed, steps)
    elapsed_before, warm_step, devices = 0.0, None, []
    teacher_state, teacher = None, None  # the self-distillation phase's teacher weights and its masks of the pool
    state = load_train_state(name) if resume else None
    state_cfg = {**DEFAULT_CONFIG, **(state.get("config") or {})} if state is not None else None
    if state is not None and state_cfg in (cfg, grown_cfg) and state.get("seed") == seed:
        if state.get("steps") != steps:  # only the schedule's length changes; exact while still in warm-up
            print(f"resuming {name} with {steps} total steps (state was made for {state.get('steps')})", flush=True)
        stages, command, note = run_stages(name, seed, steps, state)
        if state_cfg != cfg:  # saved after the decoder was grown
            cfg, net = grown_cfg, SlotAttentionAE(grown_cfg).to(dev)
            opt = torch.optim.Adam(net.parameters(), lr=tc["lr"])
        net.load_state_dict(state["model"])
        opt.load_state_dict(state["opt"])
        start, snapshots, best = state["step"], state["snapshots"], state["best"]
        init_state = state["init_state"]
        elapsed_before = state.get("elapsed", 0.0)
        warm_step, devices = state.get("warm_step"), list(state.get("devices") or [])
        teacher_state = state.get("teacher_state")
        torch.set_rng_state(state["torch_rng"])
        print(f"resumed {name} at step {start}", flush=True)

    if start == 0 and warm:
        from backend.core import load_checkpoint

        payload, _ = load_checkpoint(warm)
        if {**DEFAULT_CONFIG, **payload["config"]} != cfg:
            raise ValueError(f"{warm} was trained with another model config; cannot start {name} from it.")
        net.load_state_dict(payload["state_dict"])
        warm_step = payload.get("step")
        print(f"{name}: initialised from {warm} (step {warm_step})", flush=True)
    r = cfg["resolution"]

    def phase(step: int) -> tuple[dict, int]:
        """The training config and pool size in force at `step` (the scale-up changes both, the sharpening phase
        the batch size and the mask-entropy weight; both keep the pool in force before them)."""
        stc, n = tc, pool
        for ph in (scale, sharpen, distill):
            if ph and step >= ph["at"]:
                stc, n = {**stc, **ph.get("train", {})}, int(ph.get("pool", n))
        return stc, n

    def load_pool(step: int):
        n = phase(step)[1]
        p.update(step, steps, f"generating {n} training scenes")
        x = torch.from_numpy(_training_pool(name, n, TRAIN_SEED_BASE + seed, variant, r)).permute(0, 3, 1, 2)
        return n, x.contiguous().to(dev)  # uint8 on the device: a batch is gathered there, no host copy per step

    pool_n, train_x = load_pool(start) if start < steps else (0, None)  # a finished run only re-evaluates
    val_imgs, val_labels, _ = make_scenes(n_val, seed=VAL_SEED, variant=variant, res=r)
    rng = np.random.default_rng([seed, start])
    if dev.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = True

    def validate(step: int) -> dict:
        net.eval()
        current = SlotModel(net, dev)
        m = evaluate(current, val_imgs, val_labels, seed=0)
        probe = probe_scores(current, variant=variant, n_train=n_probe[0], n_test=n_probe[1], seed=30_000)
        snap = {"step": step, "val_fg_ari": m["fg_ari"], "val_ari": m["ari"], "val_miou": m["miou"],
                "val_mse": m["mse"], "probe": probe, "val_readout": readout(),
                "state": {k: v.detach().cpu().clone() for k, v in net.state_dict().items()}}
        net.train()
        r = snap["val_readout"]
        print(f"[{name}] step {step} val FG-ARI {m['fg_ari']:.3f} mIoU {m['miou']:.3f} MSE {m['mse']:.5f} "
              f"probe {probe['mean']:.3f}; readout ({r['iters']} iterations, merge {r['merge']}) FG-ARI "
              f"{r['val_fg_ari']:.3f} mIoU {r['val_miou']:.3f} ({time.time() - t0 + elapsed_before:.0f}s)", flush=True)
        return snap

    def readout() -> dict:
        """The current weights' best readout on the validation scenes (the snapshot rule's score)."""
        grid = readout_grid(net.eval(), dev, cfg["iters"], val_imgs, val_labels)
        it, tau = best_readout(grid)
        return {"iters": it, "merge": tau, **grid[(it, tau)]}

    if start and snapshots:  # runs saved before the snapshot rule scored the readout: score the weights still kept
        if snapshots[-1]["step"] == start and "state" not in snapshots[-1]:
            snapshots[-1]["state"] = {k: v.detach().cpu().clone() for k, v in net.state_dict().items()}
        current = copy.deepcopy(net.state_dict())
        for s in snapshots[1:]:
            if "state" in s and "val_readout" not in s:
                net.load_state_dict(s["state"])
                s["val_readout"] = readout()
                print(f"[{name}] step {s['step']}: readout scored {s['val_readout']}", flush=True)
        net.load_state_dict(current)
        net.train()
        scored = max(snapshots[1:] or snapshots, key=snapshot_score)
        best = {"step": scored["step"], "score": snapshot_score(scored)}
        _keep_weights(snapshots)

    if start == 0:
        snapshots.append(validate(0))
    net.train()
    loss_sum, loss_n, loss_ema, drawn = None, 0, None, []
    if start < steps:  # the device each stage trained on, for the card
        devices = (devices + ["?"] * len(stages))[:len(stages) - 1] + [str(dev)]
    for step in range(start, steps):
        if grow and step == grow["at"] and cfg != grown_cfg:
            net, opt, snapshots, init_state = _grow(net, grown_cfg, snapshots, init_state, dev)
            cfg = grown_cfg
            print(f"[{name}] step {step}: decoder grown {grow['config']}", flush=True)
        stc, n_pool = phase(step)
        if n_pool != pool_n:
            pool_n, train_x = load_pool(step)
            teacher = None
            print(f"[{name}] step {step}: {pool_n} training scenes, batch {stc['batch_size']}", flush=True)
        if sharpen and step == sharpen["at"]:
            print(f"[{name}] step {step}: mask sharpening {sharpen['train']}", flush=True)
        if distill and step in [*distill.get("refresh_at", ()), *(r["at"] for r in distill_rounds(distill))]:
            teacher_state, teacher = None, None  # a new round: the best snapshot so far becomes the teacher
        if distill and step >= distill["at"] and teacher is None:
            if teacher_state is None:  # the phase starts: the teacher is the best snapshot so far, fixed from here
                teacher_state = next(s["state"] for s in snapshots if s["step"] == best["step"] and "state" in s)
            dnow = distill_in_force(distill, step)
            teacher = _teacher_masks(teacher_state, cfg, dev, train_x, dnow, p)
            print(f"[{name}] step {step}: self-distillation from the step-{best['step']} model's "
                  f"{dnow['teacher_passes']}-pass masks (merge {dnow.get('teacher_merge')}) {distill['train']}",
                  flush=True)
        for g in opt.param_groups:
            g["lr"] = phase_lr(step, steps, tc, grow, scale, sharpen, distill)
        if not drawn:
            drawn = _draw_batches(rng, range(step, min(step + 100, steps)), phase, dev)
        idx, flip = drawn.pop(0)
        xb = train_x[idx].float().div(127.5).sub(1)
        xb = torch.where(flip[:, None, None, None], xb.flip(-1), xb)
        tb = None
        if stc.get("distill"):  # the teacher's averaged masks of these scenes, mirrored with them
            tb = teacher[idx].float()
            tb = torch.where(flip[:, None, None, None], tb.flip(-1), tb)
        loss = _train_step(net, opt, xb, stc["clip_grad"], stc.get("mask_entropy", 0.0), tb, stc.get("distill", 0.0))
        # the loss is read back every 20 steps only (a read is a device sync)
        loss_sum = loss.detach() if loss_sum is None else loss_sum + loss.detach()
        loss_n += 1
        done = step + 1
        if done % 20 == 0 or done == steps:
            mean = loss_sum.item() / loss_n
            loss_ema = mean if loss_ema is None else 0.67 * loss_ema + 0.33 * mean
            loss_sum, loss_n = None, 0
            p.update(done, steps, f"loss {loss_ema:.4f}")
        if done % stc["eval_every"] == 0 or done == steps:
            snapshots.append(validate(done))
            score = snapshot_score(snapshots[-1])
            if best is None or score > best["score"]:
                best = {"step": done, "score": score}
            _keep_weights(snapshots)
        if done % stc["save_every"] == 0 or done == steps:
            save_train_state(name, {
                "model": net.state_dict(), "opt": opt.state_dict(), "step": done, "snapshots": snapshots,
                "best": best, "config": cfg, "steps": steps, "stages": stages, "seed": seed, "init_state": init_state,
                "elapsed": time.time() - t0 + elapsed_before, "torch_rng": torch.get_rng_state(),
                "warm_step": warm_step, "devices": devices, "teacher_state": teacher_state,
            })
    train_time = time.time() - t0 + elapsed_before

    # the shipped weights: the best snapshot by the snapshot rule (`snapshot_score`)
    best_snap = max(snapshots[1:] or snapshots, key=snapshot_score)
    net.load_state_dict(best_snap["state"])
    net.eval()
    # the inference settings, chosen together on the validation scenes by the same rule as the snapshot: the attention
    # iterations (Slot Attention may iterate more at test time than in training: training's count or up to 2 more)
    # and the duplicate-slot merging threshold or none (`merge_duplicate_slots`); ties: the fewest iterations, then
    # no merging, then the strictest threshold. (Until the seventh sitting the iterations were chosen first, without
    # merging, and the threshold then: a sequential choice that ignored how merging changes each count's scores.)
    from backend.slots.metrics import ari_per_image, miou_per_image

    p.update(steps, steps, "choosing the attention iterations and the merging at inference on validation scenes")
    grid = readout_grid(net, dev, cfg["iters"], val_imgs, val_labels)
    test_iters, merge_tau = best_readout(grid)
    iter_val = {it: grid[(it, None)] for it, tau in grid if tau is None}  # unmerged, per iteration count
    merge_val = {tau: grid[(test_iters, tau)] for it, tau in grid if it == test_iters}
    model = SlotModel(net, dev, name, iters=test_iters, merge=merge_tau)
    p.update(steps, steps, f"evaluating on {n_test} held-out scenes")
    test_imgs, test_labels, test_objs = make_scenes(n_test, seed=EVAL_SEED, variant=variant, res=r)
    m = evaluate(model, test_imgs, test_labels, seed=0)
    m_train_iters = m if test_iters == cfg["iters"] and merge_tau is None else evaluate(
        SlotModel(net, dev), test_imgs, test_labels, 0)  # the plain readout: training's iterations, no merging
    m_no_merge = m if merge_tau is None else evaluate(SlotModel(net, dev, iters=test_iters), test_imgs, test_labels, 0)
    from backend.slots.api import posterior_masks

    # the second readout of the same model (page: "posterior given the image"): each pixel's posterior over slots
    post = posterior_masks(test_imgs, m["_seg"])
    post_fg, post_miou = ari_per_image(test_labels, post, True).mean(), miou_per_image(test_labels, post).mean()
    # test-time averaging over AVG_PASSES passes (slot initialisations and the mirror image), not the default
    m_avg = evaluate(SlotModel(net, dev, iters=test_iters, merge=merge_tau), test_imgs, test_labels, 0,
                     passes=AVG_PASSES)
    # a reference, not a bound: the true anti-aliased coverage read out as masks, by majority and objects first
    cov = scene_coverage(n_test, seed=EVAL_SEED, variant=variant, res=r)
    coverage = {}
    for suffix, objects_first in (("", False), ("_objects_first", True)):
        mk = coverage_masks(cov, objects_first)
        coverage[f"fg_ari{suffix}"] = float(ari_per_image(test_labels, mk, True).mean())
        coverage[f"miou{suffix}"] = float(miou_per_image(test_labels, mk).mean())
    km = _kmeans_cached(test_imgs, cfg["num_slots"], KMEANS_POS_WEIGHT[variant])
    km_fg, km_full, km_miou = (ari_per_image(test_labels, km, True), ari_per_image(test_labels, km, False),
                               miou_per_image(test_labels, km))
    # snapshots: validation segmentation metrics + the property probe taken on Hungarian-matched slots at that step
    snap_rows = [{"step": s["step"], "val_fg_ari": round(s["val_fg_ari"], 4), "val_miou": round(s["val_miou"], 4),
                  "val_mse": round(s["val_mse"], 6), "val_ari": round(s["val_ari"], 4),
                  **{f"val_readout_{k.removeprefix('val_')}": v for k, v in s.get("val_readout", {}).items()},
                  **{f"probe_{k}": round(v, 4) for k, v in s.get("probe", {}).items()}} for s in snapshots]
    wall = time.time() - t0 + elapsed_before
    metrics = {"fg_ari": m["fg_ari"], "ari": m["ari"], "miou": m["miou"], "mse": m["mse"],
               "fg_ari_median": float(np.median(m["_per_image"]["fg_ari"])),
               "frac_fg_ari_above_0.9": float((m["_per_image"]["fg_ari"] >= 0.9).mean()),
               "fg_ari_at_train_iters": m_train_iters["fg_ari"], "miou_at_train_iters": m_train_iters["miou"],
               "fg_ari_no_merge": m_no_merge["fg_ari"], "miou_no_merge": m_no_merge["miou"],
               "fg_ari_posterior": float(post_fg), "miou_posterior": float(post_miou),
               f"fg_ari_passes{AVG_PASSES}": m_avg["fg_ari"], f"miou_passes{AVG_PASSES}": m_avg["miou"],
               f"mse_passes{AVG_PASSES}": m_avg["mse"]}
    baselines = {"kmeans_fg_ari": float(km_fg.mean()), "kmeans_ari": float(km_full.mean()),
                 "kmeans_miou": float(km_miou.mean())}
    card = {
        "command": command,
        "title": f"Slot Attention on generated {variant} scenes",
        "paper": "Locatello et al., Object-Centric Learning with Slot Attention (NeurIPS 2020)",
        "config": {**cfg, **tc, "pool": pool, **({"grow": grow} if grow else {}),
                   **({"scale": scale} if scale else {}), **({"sharpen": sharpen} if sharpen else {}),
                   **({"distill": distill} if distill else {})},
        "data": (f"{variant}: 2-4 objects (square, circle, triangle, heart), 20-40 % of the side, {r}x{r}; "
                 f"train pool {pool} scenes from seed {TRAIN_SEED_BASE + seed}"
                 + (f" ({scale['pool']} from step {scale['at']})" if scale else "") + f"; validation {n_val} scenes "
                 f"(seed {VAL_SEED}); test {n_test} scenes (seed {EVAL_SEED})"),
        "why": WHY + (f" Initialised from the {warm} checkpoint ("
                      + (f"its step {warm_step}, " if warm_step is not None else "")
                      + f"trained on flat sprites) and fine-tuned on {variant} scenes." if warm else "")
               + run.get("why", ""),
        "seed": seed, "steps": steps, "selected_step": best_snap["step"],
        "test_iters": test_iters, "test_iters_validation": {str(k): v for k, v in iter_val.items()},
        "merge_tau": merge_tau, "merge_validation": {str(k): v for k, v in merge_val.items()},
        "inference_validation": {f"{it} iterations, merge {tau}": v for (it, tau), v in grid.items()},
        "wall_time_s": round(wall, 1), "train_time_s": round(train_time, 1),
        "device": " + ".join(dict.fromkeys(devices or [str(dev)])), "stage_devices": devices or [str(dev)],
        "variant": variant, "n_eval": n_test,
        "metrics": {k: round(v, 5) for k, v in metrics.items()},
        "baselines": {k: round(v, 5) for k, v in baselines.items()},
        "baseline_desc": (f"per-image k-means on (R,G,B, w*x, w*y) with w = {KMEANS_POS_WEIGHT[variant]} (tuned on "
                          f"validation scenes), K = {cfg['num_slots']}"),
        "coverage": {k: round(v, 5) for k, v in coverage.items()},
        "coverage_desc": ("the true anti-aliased coverage of each pixel by the background and each object "
                          "(`scene_coverage`) used as masks: `fg_ari`/`miou` read each pixel by its majority, "
                          "`*_objects_first` give every pixel an object touches to the objects. Labels take one "
                          "drawing sample per pixel, so on edge pixels the image cannot tell the label. Not an upper "
                          "bound on FG-ARI: it ignores background-labelled pixels, so widening objects into the "
                          "background costs nothing there (objects first scores higher) while mIoU, background "
                          "included, pays for it"),
        "passes": AVG_PASSES,
        "headline": {"metric": "fg_ari", "label": f"FG-ARI, {n_test} held-out {variant} scenes",
                     "value": round(m["fg_ari"], 4), "baseline": round(float(km_fg.mean()), 4),
                     "baseline_label": "k-means (colour + position)"},
        "targets": {"fg_ari": 0.9 if variant == "sprites" else 0.7,
                    **({"miou": 0.75} if variant == "sprites" else {"lead_over_kmeans": 0.2})},
        "snapshots": snap_rows,
    }
    if note:
        card["note"] = note
    payload = {"config": cfg, "state_dict": {k: v.detach().cpu() for k, v in net.state_dict().items()},
               "variant": variant, "step": best_snap["step"], "test_iters": test_iters, "merge_tau": merge_tau}
    if write:
        save_checkpoint(name, payload, card)
    p.update(steps, steps, "done")
    return card


def _grow(net, grown_cfg: dict, snapshots: list, init_state: dict, dev):
    """Grow the decoder: a new net with the trained weights and identity-initialised extra blocks (same outputs),
    a fresh Adam, and earlier snapshots / the untrained reference padded with those identity blocks so every
    snapshot loads into the grown architecture and still computes what it computed when it was taken."""
    import torch

    from backend.slots.model import SlotAttentionAE

    new = SlotAttentionAE(grown_cfg).to(dev)
    fresh = {k: v.detach().cpu().clone() for k, v in new.state_dict().items()}
    pad = lambda sd: {**{k: v for k, v in fresh.items() if k not in sd}, **sd}  # noqa: E731
    new.load_state_dict(pad(net.state_dict()))
    for s in snapshots:
        if "state" in s:
            s["state"] = pad(s["state"])
    return new, torch.optim.Adam(new.parameters()), snapshots, pad(init_state)


def distill_loss(masks, teacher):
    """Mean per-pixel KL(teacher || masks) across slots, after matching each image's teacher slots to its slots
    (Hungarian, on the cross-entropy): the student's slot order follows its own initialisation noise. Both
    (B, K, H, W), summing to 1 over K."""
    import torch
    from scipy.optimize import linear_sum_assignment

    log_m = masks.clamp_min(1e-8).log()
    t = teacher.clamp_min(0)
    with torch.no_grad():
        cost = -torch.einsum("bkhw,bjhw->bkj", t, log_m).cpu().numpy()  # teacher slot k vs student slot j
    perm = np.empty(cost.shape[:2], np.int64)
    for i, c in enumerate(cost):
        rows, cols = linear_sum_assignment(c)
        perm[i, cols] = rows  # student slot cols[r] gets teacher slot rows[r]
    t = torch.gather(t, 1, torch.from_numpy(perm).to(t.device)[:, :, None, None].expand_as(t))
    return (t * (t.clamp_min(1e-8).log() - log_m)).sum(1).mean()


def _teacher_masks(state: dict, cfg: dict, dev, train_x, distill: dict, progress):
    """The self-distillation targets: a frozen copy of the model with weights `state` segments every pool image
    with test-time averaging (`segment(passes=...)`) and no merging, or duplicate slots merged at
    `distill["teacher_merge"]` (their masks become one slot's, the others empty) -> float16 (N, K, R, R) on the
    device."""
    import torch

    from backend.slots.api import SlotModel
    from backend.slots.model import SlotAttentionAE

    net = SlotAttentionAE(cfg).to(dev)
    net.load_state_dict(state)
    model = SlotModel(net.eval(), dev, iters=int(distill["teacher_iters"]))
    x = train_x.permute(0, 2, 3, 1).cpu().numpy()
    out, chunk = [], 500
    for a in range(0, len(x), chunk):
        progress.update(a, len(x), f"teacher masks ({distill['teacher_passes']} passes)")
        m = model.segment(x[a:a + chunk], seed=a, merge=distill.get("teacher_merge") or False,
                          passes=int(distill["teacher_passes"])).masks
        out.append(torch.from_numpy(m).half())
    return torch.cat(out).to(dev)


def mask_entropy(masks):
    """Mean over pixels of the entropy (nats) of the decoder's alpha masks across slots, masks (B, K, H, W)."""
    m = masks.clamp_min(1e-8)
    return -(m * m.log()).sum(1).mean()


def _train_step(net, opt, xb, clip_grad: float, entropy_weight: float = 0.0, teacher=None, distill_weight: float = 0.0):
    """One optimiser step on the reconstruction MSE of a batch in [-1, 1], plus `entropy_weight` times the masks'
    per-pixel entropy across slots (the sharpening phase) and `distill_weight` times `distill_loss` against the
    teacher's masks (B, K, H, W) (the self-distillation phase); returns the loss (not read back)."""
    import torch

    out = net(xb)
    loss = torch.nn.functional.mse_loss(out["recon"], xb)
    if entropy_weight:
        loss = loss + entropy_weight * mask_entropy(out["masks"])
    if distill_weight:
        loss = loss + distill_weight * distill_loss(out["masks"], teacher)
    opt.zero_grad(set_to_none=True)
    loss.backward()
    torch.nn.utils.clip_grad_norm_(net.parameters(), clip_grad)
    opt.step()
    return loss


def step_seconds(name: str, device=None, repeats: int = 40) -> float:
    """Seconds per training step of NAME's full-size model (grown decoder, its last phase's batch and loss) on
    `device`, timed on random images after a warm-up; used to fit a run's step count to a wall-clock budget
    (`scripts/gpu_slots.sh`)."""
    import torch

    from backend.slots.model import DEFAULT_CONFIG, SlotAttentionAE

    run = RUNS[name]
    grow = run.get("grow")
    cfg = {**DEFAULT_CONFIG, **run.get("config", {}), **(grow["config"] if grow else {})}
    tc = {**TRAIN_CONFIG, **run.get("train", {})}
    for ph in (run.get("scale"), run.get("sharpen"), run.get("distill")):  # the last phase's batch size and loss
        tc.update(ph["train"] if ph else {})
    dev = get_device(device)
    net = SlotAttentionAE(cfg).to(dev)
    opt = torch.optim.Adam(net.parameters(), lr=1e-4)
    r, b = cfg["resolution"], tc["batch_size"]
    x = torch.rand(b, 3, r, r, device=dev) * 2 - 1
    teacher = torch.rand(b, cfg["num_slots"], r, r, device=dev).softmax(1) if tc.get("distill") else None
    args = (tc["clip_grad"], tc["mask_entropy"], teacher, tc.get("distill", 0.0))

    for _ in range(max(3, repeats // 4)):
        _train_step(net, opt, x, *args)
    if dev.type == "cuda":
        torch.cuda.synchronize()
    t = time.perf_counter()
    for _ in range(repeats):
        _train_step(net, opt, x, *args)
    if dev.type == "cuda":
        torch.cuda.synchronize()
    return (time.perf_counter() - t) / repeats


def _draw_batches(rng, steps: range, phase, dev) -> list:
    """(scene indices, flip flags) of these steps' batches (`phase(step)` gives the config and pool size), drawn in
    step order (the same draws as one step at a time) and copied to the device in one transfer: a copy per step
    would wait for the device every step."""
    import torch

    sizes, idx, flip = [], [], []
    for s in steps:
        cfg, n_pool = phase(s)
        b = cfg["batch_size"]
        idx.append(rng.integers(0, n_pool, b))
        flip.append(rng.random(b) < 0.5)
        sizes.append(b)
    idx_d = torch.from_numpy(np.concatenate(idx)).to(dev)
    flip_d = torch.from_numpy(np.concatenate(flip)).to(dev)
    return list(zip(idx_d.split(sizes), flip_d.split(sizes)))


def _keep_weights(snapshots: list) -> None:
    """Drop the weights of snapshots that can no longer be shipped: only step 0's (the untrained or initial network)
    and the best by the snapshot rule (`snapshot_score`) are kept; every snapshot keeps its metrics and probe scores."""
    if len(snapshots) < 2:
        return
    best = max(snapshots[1:], key=snapshot_score)
    for s in snapshots[1:]:
        if s is not best:
            s.pop("state", None)


def _training_pool(name: str, n: int, seed: int, variant: str, res: int) -> np.ndarray:
    """The fixed pool of training images, cached in runs/NAME/ so a resumed run does not redraw it."""
    from backend.core import registry

    path = registry.RUNS_DIR / name / f"pool-{variant}-{n}-{seed}-{res}.npy"
    if path.exists():
        return np.load(path)
    imgs = _render_parallel(n, seed, variant, res)
    path.parent.mkdir(parents=True, exist_ok=True)
    np.save(path, imgs)
    return imgs


def _render_images(args) -> np.ndarray:
    n, seed, variant, res, start = args
    return make_scenes(n, seed=seed, variant=variant, res=res, start=start)[0]


def _render_parallel(n: int, seed: int, variant: str, res: int, chunk: int = 2500) -> np.ndarray:
    """Images of `make_scenes(n, seed, ...)`, rendered in chunks by worker processes for large pools (scene i is
    seeded by [seed, i] alone, so the result is the same as one call)."""
    import os
    from concurrent.futures import ProcessPoolExecutor
    from multiprocessing import get_context

    workers = min(os.cpu_count() or 1, -(-n // chunk))
    if workers < 2:
        return make_scenes(n, seed=seed, variant=variant, res=res)[0]
    jobs = [(min(chunk, n - a), seed, variant, res, a) for a in range(0, n, chunk)]
    with ProcessPoolExecutor(workers, mp_context=get_context("spawn")) as ex:
        return np.concatenate(list(ex.map(_render_images, jobs)))


def _kmeans_cached(images, k, pos_weight):
    from backend.slots.metrics import kmeans_segment

    return kmeans_segment(images, k=k, pos_weight=pos_weight, seed=0)


def train_sprites(steps=None, device=None, seed=0, resume=False, progress=None):
    return _train("slots-sprites", steps, device, seed, resume, progress)


def train_textured(steps=None, device=None, seed=0, resume=False, progress=None):
    return _train("slots-textured", steps, device, seed, resume, progress)


TRAINERS = {"slots-sprites": train_sprites, "slots-textured": train_textured}
