"""`python -m backend.train NAME [--steps N] [--device D] [--seed S] [--resume]`

Trains a shipped model and writes `assets/checkpoints/NAME.pt` with its model card `NAME.json`.
`all` trains every model in turn (resumable) and prints a table of their held-out metrics.
"""

from __future__ import annotations

import argparse
import json
import sys
import time

from backend.core.progress import Cancelled, TextProgress
from backend.domains import trainers


def _metrics_table(rows: list[tuple[str, dict]]) -> str:
    lines = [f"{'model':<22} {'metric':<28} {'value':>10} {'baseline':>10}"]
    for name, card in rows:
        h = card.get("headline") or {}
        lines.append(
            f"{name:<22} {str(h.get('label', h.get('metric', '-'))):<28} "
            f"{_fmt(h.get('value')):>10} {_fmt(h.get('baseline')):>10}"
        )
        for k, v in (card.get("metrics") or {}).items():
            if isinstance(v, (int, float)):
                lines.append(f"{'':<22} {k:<28} {_fmt(v):>10}")
    return "\n".join(lines)


def _fmt(v) -> str:
    if isinstance(v, float):
        return f"{v:.4g}"
    return "-" if v is None else str(v)


def main(argv=None) -> int:
    available = trainers()
    p = argparse.ArgumentParser(
        prog="python -m backend.train",
        description="Train a Latent Lab model and write its checkpoint and model card.",
        epilog="Available models: " + (", ".join(available) or "(none built yet)") + ", or 'all'.",
    )
    p.add_argument("name", help="model to train: " + " | ".join([*available, "all"]))
    p.add_argument("--steps", type=int, default=None, help="training steps (default: the model's own)")
    p.add_argument("--device", default=None, help="cpu | cuda | cuda:N (default: CUDA if present)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--resume", action="store_true", help="continue from runs/NAME/state.pt")
    p.add_argument("--json", action="store_true", help="print the resulting cards as JSON")
    a = p.parse_args(argv)
    names = list(available) if a.name == "all" else [a.name]
    unknown = [n for n in names if n not in available]
    if unknown:
        p.error(f"unknown model {unknown[0]!r}; choose from: {', '.join(available) or '(none)'}")
    rows = []
    for n in names:
        t = time.time()
        print(f"== training {n}", file=sys.stderr)
        try:
            card = available[n](steps=a.steps, device=a.device, seed=a.seed, resume=a.resume or a.name == "all",
                                progress=TextProgress(n))
        except Cancelled:
            print(f"{n}: cancelled", file=sys.stderr)
            return 130
        print(f"== {n} done in {time.time() - t:.0f}s", file=sys.stderr)
        rows.append((n, card))
    print(json.dumps(dict(rows), indent=2, default=str) if a.json else _metrics_table(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
