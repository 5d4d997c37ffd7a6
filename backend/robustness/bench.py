"""`python -m backend.bench robustness`: seconds for the page's requests on the shipped zoo (CPU).

`study` is what the scatter needs (fit with 500 bootstrap resamples, paired effects, proxy ranking); target
(issue 25): under 2 s. `train_one` trains the page's default member (cnn-small, affine, 100 shots per class,
2 epochs) and evaluates it on all 43 domains; target: under 15 s. `load_1min` is the load average (timings on a
shared machine depend on it).
"""

from __future__ import annotations

import os
import time

from backend.robustness.api import study, train_one, zoo


def run(quick: bool = False) -> list[dict]:
    zoo()  # load the table once (not timed: the page caches it per process)
    rows = []
    for ood in (["uci"] if quick else ["uci", "fonts", "rotation/3", "noise/5"]):
        t = time.perf_counter()
        s = study("mnist", ood, "aug")
        sec = time.perf_counter() - t
        rows.append({"bench": f"study mnist->{ood}", "value": round(sec, 2), "unit": "s", "target": "< 2 s",
                     "members": int(s.fit["n"]), "load_1min": round(os.getloadavg()[0], 1)})
    config = {"arch": "cnn-small", "aug": "affine", "shots": 100, "epochs": 2, "lr": 3e-3}
    t = time.perf_counter()
    row = train_one(config, seed=0)
    rows.append({"bench": "train_one cnn-small affine 100/class 2 epochs", "value": round(time.perf_counter() - t, 2),
                 "unit": "s", "target": "< 15 s", "id_acc": row["id_acc"], "load_1min": round(os.getloadavg()[0], 1)})
    return rows
