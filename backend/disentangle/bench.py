"""`python -m backend.bench disentangle`: seconds for DCI-ES on N = 5,000 samples, L = K = 10, per probe type (CPU).

The code is a random rotation of 10 uniform factors; ratios are against the default probe (`rf`) timed in
the same run. Target (issue 8): the default probe under 10 s on 2 cores. `load_1min` is the machine's load
average when the row finished (timings on a shared machine depend on it).
"""

from __future__ import annotations

import os
import time

from backend.disentangle.data import toy_codes
from backend.disentangle.dci import dci_es
from backend.disentangle.probes import PROBES


def run(quick: bool = False) -> list[dict]:
    n, k = (1000, 4) if quick else (5000, 10)
    codes, factors, _ = toy_codes("rotation", n=n, k=k, seed=0)
    dci_es(codes[:200], factors[:200], probe="rf", capacities=[1, 2])  # warm up imports, not timed
    rows, base = [], None
    for probe in PROBES:
        t = time.perf_counter()
        res = dci_es(codes, factors, probe=probe, seed=0)
        sec = time.perf_counter() - t
        base = base if base is not None else sec
        rows.append({"bench": f"dci_es probe={probe} N={n} L=K={k}", "value": round(sec, 2), "unit": "s",
                     "x_vs_rf": round(sec / base, 2), "target": "< 10 s" if probe == "rf" else "",
                     "D": round(res.D, 3), "I": round(res.I, 3), "E": round(res.E, 3),
                     "load_1min": round(os.getloadavg()[0], 1)})
    return rows
