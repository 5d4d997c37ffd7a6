"""`python -m backend.bench [NAME ...] [--quick] [--json]`: benchmarks as a table (not timed tests).

Each domain's `bench.run(quick)` returns rows {"bench", "value", "unit", ...}; ratios are against a
baseline measured in the same run.
"""

from __future__ import annotations

import argparse
import json
import sys

from backend.domains import benches


def main(argv=None) -> int:
    available = benches()
    p = argparse.ArgumentParser(
        prog="python -m backend.bench",
        description="Run Latent Lab benchmarks and print a table.",
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
    results = {n: available[n](quick=a.quick) for n in names}
    if a.json:
        print(json.dumps(results, indent=2, default=str))
        return 0
    for n, rows in results.items():
        print(f"\n## {n}")
        keys = []
        for r in rows:
            keys += [k for k in r if k not in keys]
        print(" | ".join(keys))
        for r in rows:
            print(" | ".join(_fmt(r.get(k)) for k in keys))
    return 0


def _fmt(v) -> str:
    if isinstance(v, float):
        return f"{v:.4g}"
    return "" if v is None else str(v)


if __name__ == "__main__":
    sys.exit(main())
