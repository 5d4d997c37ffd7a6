"""`python -m backend.bench [NAME ...] [--quick] [--json]`: benchmarks as a table (not timed tests).
`python -m backend.bench serve [--sessions 1,4,8]`: N concurrent browser sessions against a real server (see `serve`).

Each domain's `bench.run(quick)` returns rows {"bench", "value", "unit", ...}; ratios are against a
baseline measured in the same run.
"""

from __future__ import annotations

import argparse
import json
import sys

from backend.domains import benches


def serve(argv) -> int:
    """`serve`: browser sessions against a real `streamlit run` server (ui/loadtest.py, in a fresh process;
    the backend itself never imports streamlit)."""
    import subprocess
    from pathlib import Path

    p = argparse.ArgumentParser(prog="python -m backend.bench serve",
                                description="N browser sessions at once against one real server (Playwright + "
                                            "Chromium, from requirements-dev.txt): p50/p95 latency of their "
                                            "script runs, the server's peak RSS, exceptions.")
    p.add_argument("--sessions", default="1,4,8", help="comma-separated session counts (default: 1,4,8)")
    p.add_argument("--actions", type=int, default=2, help="widget changes per session after opening its page")
    p.add_argument("--cold", action="store_true", help="do not open every page once before timing")
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    a = p.parse_args(argv)
    cmd = [sys.executable, "-m", "ui.loadtest", "--sessions", a.sessions, "--actions", str(a.actions)]
    done = subprocess.run(cmd + (["--cold"] if a.cold else []), cwd=Path(__file__).resolve().parents[1],
                          capture_output=True, text=True)
    try:
        rows = json.loads(done.stdout)
    except json.JSONDecodeError:
        sys.stderr.write(done.stdout[-2000:] + done.stderr[-4000:])
        return done.returncode or 1
    _print({"serve": rows}, a.json)
    return done.returncode


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv[:1] == ["serve"]:
        return serve(argv[1:])
    available = benches()
    p = argparse.ArgumentParser(
        prog="python -m backend.bench",
        description="Run Latent Lab benchmarks and print a table (`serve`: the app under N simultaneous sessions).",
        epilog="Available benchmarks: " + (", ".join(available) or "(none built yet)") + ".",
    )
    p.add_argument("names", nargs="*", help="benchmarks to run (default: all): " + " | ".join(available))
    p.add_argument("--quick", action="store_true", help="smaller sizes, for a smoke run")
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    a = p.parse_args(argv)
    names = a.names or list(available)
    for n in names:
        if n not in available:
            p.error(f"unknown benchmark {n!r}; choose from: {', '.join(available) or '(none)'}")
    _print({n: available[n](quick=a.quick) for n in names}, a.json)
    return 0


def _print(results: dict, as_json: bool) -> None:
    if as_json:
        print(json.dumps(results, indent=2, default=str))
        return
    for n, rows in results.items():
        print(f"\n## {n}")
        keys = []
        for r in rows:
            keys += [k for k in r if k not in keys]
        print(" | ".join(keys))
        for r in rows:
            print(" | ".join(_fmt(r.get(k)) for k in keys))


def _fmt(v) -> str:
    if isinstance(v, float):
        return f"{v:.4g}"
    return "" if v is None else str(v)


if __name__ == "__main__":
    sys.exit(main())
