"""Load test of the app (`python -m backend.bench serve` runs this module in a fresh process).

N simulated sessions run at once, one thread each, through Streamlit's AppTest: every session opens a
different page (app.py, then the page), then makes `actions` widget changes (the seed, or the first
select box), each a full script run. Reported per N: p50 / p95 latency of those runs, the peak RSS of this
process (the "server": all sessions share its caches, models and job gate) sampled every 50 ms, and the
number of exceptions (an exception element on a page, or an error raised by a run). Each session also
checks that its own widget value survived the other sessions' runs (state isolation).

    python -m ui.loadtest --sessions 1,4,8 --actions 2      # prints the rows as JSON
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PAGES = ["pages/slots.py", "pages/video.py", "pages/disentangle.py", "pages/causal.py", "pages/apt.py",
         "pages/cells.py", "pages/models.py", "pages/home.py"]


def _rss_mb() -> float:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


class _PeakRss:
    def __init__(self):
        self.peak, self._stop = _rss_mb(), threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def _sample(self):
        while not self._stop.wait(0.05):
            self.peak = max(self.peak, _rss_mb())

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, _rss_mb())


def _change(at, step: int) -> str:
    """Make one widget change on the page (a seed, else a select box); returns what it changed."""
    for w in at.number_input:
        if "seed" in w.label.lower():
            w.set_value(min(int(w.value) + 1 + step, 999)).run()
            return f"{w.key}={w.value}"
    for w in at.selectbox:
        opts = list(w.options)
        if len(opts) > 1:
            w.set_value(w.options[(opts.index(str(w.value)) + 1) % len(opts)] if str(w.value) in opts
                        else w.options[0]).run()
            return f"{w.key}"
    at.run()
    return "rerun"


def _session(i: int, actions: int, timeout: float, out: list, errors: list) -> None:
    from streamlit.testing.v1 import AppTest

    page = PAGES[i % len(PAGES)]
    try:
        t0 = time.perf_counter()
        at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=timeout)
        at.run()
        at.switch_page(page).run()
        out.append(("open", page, time.perf_counter() - t0))
        if at.exception:
            errors.append(f"{page}: {at.exception[0].value}")
        for k in range(actions):
            t0 = time.perf_counter()
            what = _change(at, k)
            out.append(("change", page, time.perf_counter() - t0))
            if at.exception:
                errors.append(f"{page} after {what}: {at.exception[0].value}")
            if what.count("=") == 1:  # the session's own value is still there after the other sessions' runs
                key, value = what.split("=")
                if str(at.session_state[key]) != value:
                    errors.append(f"{page}: {key} is {at.session_state[key]}, expected {value}")
    except Exception as e:  # noqa: BLE001 - counted and reported, the load test goes on
        errors.append(f"{page}: {type(e).__name__}: {e}")


def _pct(values: list, q: float) -> float:
    v = sorted(values)
    if not v:
        return float("nan")
    k = (len(v) - 1) * q
    lo, hi = int(k), min(int(k) + 1, len(v) - 1)
    return v[lo] + (v[hi] - v[lo]) * (k - lo)


def run(sessions=(1, 4, 8), actions: int = 2, timeout: float = 600, warm: bool = True) -> list[dict]:
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))
    rows = []
    if warm:  # open every page once, alone: model loads and caches are then warm for every N
        t0, errors = time.perf_counter(), []
        for i in range(len(PAGES)):
            _session(i, 0, timeout, [], errors)
        rows.append({"bench": "serve: warm-up (each page opened once, alone)", "sessions": 1, "runs": len(PAGES),
                     "wall_s": time.perf_counter() - t0, "peak_rss_mb": _rss_mb(), "exceptions": len(errors),
                     "errors": "; ".join(errors)[:500] or None})
    for n in sessions:
        out, errors = [], []
        threads = [threading.Thread(target=_session, args=(i, actions, timeout, out, errors)) for i in range(n)]
        t0 = time.perf_counter()
        with _PeakRss() as rss:
            for t in threads:
                t.start()
            for t in threads:
                t.join()
        lat = [x[2] for x in out]
        rows.append({"bench": f"serve: {n} session(s) at once", "sessions": n, "runs": len(lat),
                     "p50_s": _pct(lat, 0.5), "p95_s": _pct(lat, 0.95), "max_s": max(lat, default=float("nan")),
                     "wall_s": time.perf_counter() - t0, "peak_rss_mb": rss.peak, "exceptions": len(errors),
                     "errors": "; ".join(errors)[:500] or None,
                     "pages": ", ".join(sorted({x[1].split("/")[-1][:-3] for x in out}))})
    return rows


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m ui.loadtest", description=__doc__.split("\n\n")[0])
    p.add_argument("--sessions", default="1,4,8", help="comma-separated numbers of simultaneous sessions")
    p.add_argument("--actions", type=int, default=2, help="widget changes per session after opening its page")
    p.add_argument("--cold", action="store_true", help="skip opening every page once before timing")
    a = p.parse_args(argv)
    os.environ.setdefault("LATENTLAB_WARMUP", "0")  # measure the sessions, not the background warm-up
    rows = run([int(x) for x in a.sessions.split(",") if x.strip()], a.actions, warm=not a.cold)
    print(json.dumps(rows, indent=2, default=str))
    return 1 if any(r["exceptions"] for r in rows) else 0


if __name__ == "__main__":
    sys.exit(main())
