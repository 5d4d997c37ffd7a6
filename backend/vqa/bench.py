"""`python -m backend.bench vqa`: a custom question answered by every shipped representation (target < 1 s on
2 CPU cores, issue 23), and one representation alone."""

from __future__ import annotations

import time


def run(quick: bool = False) -> list[dict]:
    import torch

    from backend.vqa import ask, representations

    ask(index=0, question="is the red object left of the square")  # warm-up: loads every model once
    rows = []
    for i in range(2 if quick else 5):
        t = time.perf_counter()
        a = ask(index=i + 1, question="how many circles are there")
        rows.append(time.perf_counter() - t)
    best = min(rows)
    out = [{"bench": f"custom question, all {len(a.probs)} representations", "value": 1000 * best, "unit": "ms",
            "target": "< 1000 ms", "threads": torch.get_num_threads()}]
    for r in representations():
        t = time.perf_counter()
        ask(index=7, question="what shape is the blue object", reps=[r])
        out.append({"bench": f"custom question, {r}", "value": 1000 * (time.perf_counter() - t), "unit": "ms"})
    return out
