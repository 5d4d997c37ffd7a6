"""`python -m backend.train NAME [--steps N] [--device D] [--seed S] [--resume] [--set KEY=VALUE ...]`

Trains a shipped model through `backend.core.training` and writes `assets/checkpoints/NAME.pt` with its
model card `NAME.json`. NAME is a checkpoint, a group (e.g. `apt`: its classifiers and generator) or
`all` (every model in turn, resumable, then a table of held-out metrics). `--evaluate` re-evaluates the
shipped weights without training and rewrites the card. Under `torchrun --nproc_per_node=N` the same
command trains with DistributedDataParallel; rank 0 alone writes files and prints.
"""

from __future__ import annotations

import argparse
import ast
import json
import sys
import time

from backend.core.progress import Cancelled, TextProgress
from backend.core.training import dist_info, reevaluate, train
from backend.domains import groups, recipes


def metrics_table(rows: list[tuple[str, dict]]) -> str:
    lines = [f"{'model':<22} {'metric':<30} {'value':>10} {'baseline':>10} {'target':>10}"]
    for name, card in rows:
        h = card.get("headline") or {}
        lines.append(f"{name:<22} {str(h.get('label', '-'))[:30]:<30} {_fmt(h.get('value')):>10} "
                     f"{_fmt(h.get('baseline')):>10}")
        for t in card.get("targets") or []:
            lines.append(f"{'':<22} {t['metric'][:30]:<30} {_fmt(t['value']):>10} {'':>10} "
                         f"{t['direction']}{_fmt(t['threshold'])} {'met' if t['met'] else 'MISSED'}")
    return "\n".join(lines)


def _fmt(v) -> str:
    if isinstance(v, float):
        return f"{v:.4g}"
    return "-" if v is None else str(v)


def _override(text: str) -> tuple[str, object]:
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise argparse.ArgumentTypeError(f"--set takes KEY=VALUE, not {text!r}")
    try:
        return key, ast.literal_eval(value)
    except (ValueError, SyntaxError):
        return key, value


def _names(name: str, available: dict, grouped: dict) -> list[str]:
    if name == "all":
        return list(available)
    if name in grouped:
        return list(grouped[name])
    return [name]


def main(argv=None) -> int:
    available, grouped = recipes(), groups()
    p = argparse.ArgumentParser(
        prog="python -m backend.train",
        description="Train a Latent Lab model and write its checkpoint and model card.",
        epilog="Models: " + (", ".join(available) or "(none)") + ". Groups: "
        + ", ".join([*(f"{g} ({', '.join(m)})" for g, m in grouped.items()), "all"]) + ".",
    )
    p.add_argument("name", help="a model, a group or 'all'")
    p.add_argument("--steps", type=int, default=None, help="training steps (default: the model's own)")
    p.add_argument("--device", default=None, help="cpu | cuda | cuda:N (default: CUDA if present)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--resume", action="store_true", help="continue from runs/NAME/state.pt")
    p.add_argument("--evaluate", action="store_true", help="re-evaluate the shipped weights and rewrite the card")
    p.add_argument("--set", type=_override, action="append", default=[], metavar="KEY=VALUE",
                   help="override a config entry (repeatable), e.g. --set n_eval=8")
    p.add_argument("--json", action="store_true", help="print the resulting cards as JSON")
    a = p.parse_args(argv)
    names = _names(a.name, available, grouped)
    unknown = [n for n in names if n not in available]
    if unknown:
        p.error(f"unknown model {unknown[0]!r}; choose from: {', '.join([*available, *grouped, 'all'])}")
    rank, _ = dist_info()
    rows = []
    for n in names:
        recipe = available[n](**dict(a.set))
        t = time.time()
        if rank == 0:
            print(f"== {'evaluating' if a.evaluate else 'training'} {n}", file=sys.stderr)
        try:
            if a.evaluate:
                card = reevaluate(recipe, device=a.device)
            else:
                card = train(recipe, steps=a.steps, device=a.device, seed=a.seed,
                             resume=a.resume or a.name == "all", progress=TextProgress(n))
        except Cancelled:
            print(f"{n}: cancelled (state saved; continue with --resume)", file=sys.stderr)
            return 130
        if rank == 0:
            print(f"== {n} done in {time.time() - t:.0f}s", file=sys.stderr)
        rows.append((n, card))
    if rank == 0:
        print(json.dumps(dict(rows), indent=2, default=str) if a.json else metrics_table(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
