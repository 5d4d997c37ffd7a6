"""`python -m backend.bench video`: latency of one clip at default settings, and the speed-quality table
(PSNR with every 4th frame given at 4/10/25/50/250 DDIM steps, and RaMViD-style ancestral sampling at 250).
Fewer DDIM steps move the sample towards the posterior mean: higher PSNR, blurrier frames (lower SSIM)."""

from __future__ import annotations

import time

import numpy as np


def run(quick: bool = False) -> list[dict]:
    from backend.core import device_info
    from backend.video import baseline, load_model, make_videos, preset_known
    from backend.video.metrics import psnr

    model = load_model("bouncing")
    T, R = model.num_frames, model.resolution
    rows = []
    clips = make_videos(2 if quick else 5, seed=30_000_000)
    known = preset_known("upsampling", T)
    model.infill(clips[0], known, steps=2, seed=0)  # warm-up
    times = []
    for c in clips:
        t = time.perf_counter()
        model.infill(c, known, steps=25, seed=0)
        times.append(time.perf_counter() - t)
    dev = device_info(model.device)
    rows.append({"bench": "one clip, default settings (25 DDIM steps, 1 sample)", "value": float(np.median(times)),
                 "unit": "s", "nfe": 25, "device": dev, "target": "< 10 s on 2 CPU cores"})
    n = 4 if quick else 16
    clips = make_videos(n, seed=30_000_000)
    gen = np.repeat(~known[:, None, None], R, 1).repeat(R, 2)
    masks = np.repeat(gen[None], n, 0)
    lin = float(np.mean([psnr(baseline(c, known, "linear"), c, gen) for c in clips]))
    rows.append({"bench": f"PSNR every 4th frame given, linear interpolation ({n} clips)", "value": lin, "unit": "dB",
                 "nfe": 0})
    configs = [(10, 0.0), (25, 0.0)] if quick else [(4, 0.0), (10, 0.0), (25, 0.0), (50, 0.0), (250, 0.0), (250, 1.0)]
    for steps, eta in configs:
        t = time.perf_counter()
        preds = model.batch_infill(clips, masks, steps=steps, seed=0, eta=eta)
        dt = (time.perf_counter() - t) / n
        v = float(np.mean([psnr(p, c, gen) for p, c in zip(preds, clips)]))
        name = f"DDIM {steps} steps" if eta == 0 else f"ancestral (eta=1) {steps} steps, RaMViD-style"
        rows.append({"bench": f"PSNR every 4th frame given, {name} ({n} clips)", "value": v, "unit": "dB",
                     "nfe": steps, "s_per_clip_batched": dt, "vs_linear_dB": v - lin})
    return rows
