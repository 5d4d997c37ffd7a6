"""`python -m backend.bench diffenc`: seconds for the page's encoder view (one digit, 10 times t) and for 16
samples per model (100 steps), warm, against the targets (< 1 s and < 10 s on 2 CPU cores)."""

from __future__ import annotations

import time


def run(quick: bool = False) -> list[dict]:
    from backend.diffenc import MODELS, encoder_view, sample, test_digits

    digit = test_digits(1, 0)[0][0]
    encoder_view(digit, 0.5)  # warm: data, model load
    t = time.perf_counter()
    encoder_view(digit, 0.3)
    rows = [{"bench": "encoder view (x, x_phi, y, diff + 9-step strip)", "value": round(time.perf_counter() - t, 3),
             "unit": "s", "target_s": 1.0}]
    steps = 25 if quick else 100
    for key in MODELS:
        sample(2, key, 4, 0)  # warm
        t = time.perf_counter()
        sample(16, key, steps, 0)
        rows.append({"bench": f"16 samples {key} ({steps} steps)", "value": round(time.perf_counter() - t, 3),
                     "unit": "s", "target_s": 10.0})
    return rows
