"""The zoo: which members it holds, training them resumably, and one member as a table row.

Finished members are kept in `runs/robustness-zoo/rows/ID.json` (+ their weights in `ID.pt`); a rerun skips
them, since the same config and seed give the same model. Two processes running the zoo at once share the
work (each member is claimed by an exclusive lock file).
"""

from __future__ import annotations

import itertools
import json
import os
import time

import numpy as np

from backend.core.registry import RUNS_DIR
from backend.robustness.member import PRETRAIN, check_config, fit_member, member_id

NAME = "robustness-zoo"
SEED = 0
TRANSFER_ARCHS = ("mlp-64", "mlp-256", "cnn-small", "cnn-wide")


def grid(seed: int = SEED) -> list[dict]:
    """Member configs: fonts pretraining first (transfer members need it), then the rest in a seeded order."""
    from backend.robustness.model import ARCHS, AUGS

    rng = np.random.default_rng(seed)
    pre = [check_config({**PRETRAIN, "arch": a}) for a in TRANSFER_ARCHS]
    rest = []
    budgets = [(e, lr) for e in (1, 2, 4) for lr in (1e-3, 3e-3, 1e-2)]
    for arch, aug, shots in itertools.product(ARCHS, AUGS, (10, 100, 0)):
        for j in rng.choice(len(budgets), 2, replace=False):
            e, lr = budgets[j]
            rest.append({"arch": arch, "aug": aug, "shots": shots, "epochs": e, "lr": lr, "train_domain": "mnist"})
    for arch, mode, shots in itertools.product(TRANSFER_ARCHS, ("head", "full"), (10, 100, 0)):
        rest.append({"arch": arch, "aug": "none", "shots": shots, "epochs": 2, "lr": 3e-3, "train_domain": "mnist",
                     "transfer": mode})
    for dom, arch, aug in itertools.product(("uci", "fonts"), ARCHS, ("none", "affine", "randaug")):
        e, lr = budgets[rng.integers(len(budgets))]
        rest.append({"arch": arch, "aug": aug, "shots": 0, "epochs": 2 * e, "lr": lr, "train_domain": dom})
    rest = [check_config(c) for c in rest]
    order = rng.permutation(len(rest))
    return pre + [rest[i] for i in order]


def _dir():
    d = RUNS_DIR / NAME / "rows"
    d.mkdir(parents=True, exist_ok=True)
    return d


def row_of(model, config: dict, seed: int, wall: float, steps: int, n_params: int) -> dict:
    from backend.robustness.metrics import CHANCE, evaluate_model

    c = check_config(config)
    m = evaluate_model(model, c["train_domain"])
    row = {"id": member_id(c, seed), "seed": seed, **c, "id_domain": c["train_domain"], "steps": steps,
           "params": n_params, "train_s": round(wall, 2), **{k: round(v, 5) for k, v in m.items()}}
    row["id_acc"] = row[f"acc:{c['train_domain']}"]
    row["near_chance"] = bool(row["id_acc"] < CHANCE + 0.1)
    return row


_PRETRAINED: dict = {}


def pretrained(arch: str, shipped: dict | None = None) -> dict:
    """The fonts-pretrained weights of `arch`: shipped ones, this run's, or trained now (deterministic)."""
    import torch

    if arch in _PRETRAINED:
        return _PRETRAINED[arch]
    if shipped and arch in shipped:
        _PRETRAINED[arch] = shipped[arch]
        return shipped[arch]
    cfg = check_config({**PRETRAIN, "arch": arch})
    p = _dir() / f"{member_id(cfg, SEED)}.pt"
    if p.exists():
        _PRETRAINED[arch] = torch.load(p, weights_only=True)
    else:
        model, _, _ = fit_member(cfg, SEED)
        _PRETRAINED[arch] = {k: v.detach().clone() for k, v in model.state_dict().items()}
    return _PRETRAINED[arch]


def train_member(config: dict, seed: int, progress=None, shipped: dict | None = None) -> tuple[dict, dict]:
    """Train and evaluate one member: (row, state_dict)."""
    c = check_config(config)
    pre = pretrained(c["arch"], shipped) if c["transfer"] != "none" else None
    model, wall, steps = fit_member(c, seed, pretrained=pre, progress=progress)
    n_params = sum(p.numel() for p in model.parameters())
    row = row_of(model, c, seed, wall, steps, n_params)
    return row, {k: v.detach().clone() for k, v in model.state_dict().items()}


def run_zoo(configs: list[dict], seed: int = SEED, log=print, wait_s: float = 3600) -> list[dict]:
    """Train every member not yet finished (resumable), then return all rows in grid order."""
    import torch

    d = _dir()
    t0 = time.time()
    for i, c in enumerate(configs):
        mid = member_id(c, seed)
        if (d / f"{mid}.json").exists():
            continue
        if not _claim(d / f"{mid}.claim"):
            continue  # another process is training it
        row, state = train_member(c, seed)
        torch.save(state, d / f"{mid}.pt")
        (d / f"{mid}.json").write_text(json.dumps(row))
        log(f"[{i + 1}/{len(configs)}] {mid}: ID {row['id_acc']:.3f} ({row['train_s']:.1f}s, "
            f"{time.time() - t0:.0f}s so far)")
    rows, deadline = [], time.time() + wait_s
    for c in configs:
        p = d / f"{member_id(c, seed)}.json"
        while not p.exists() and time.time() < deadline:  # claimed by another process still training
            time.sleep(2)
        if p.exists():
            rows.append(json.loads(p.read_text()))
    return rows


def _claim(path) -> bool:
    """Take the member (True) unless a live process holds it; a dead process's claim is taken over."""
    for _ in range(2):
        try:
            fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
            os.write(fd, str(os.getpid()).encode())
            os.close(fd)
            return True
        except FileExistsError:
            try:
                os.kill(int(path.read_text() or 0), 0)
                return False
            except (ProcessLookupError, ValueError, FileNotFoundError):
                path.unlink(missing_ok=True)
    return False


def reevaluate_rows(configs: list[dict], seed: int = SEED, shard: int = 0, shards: int = 1, log=print) -> int:
    """Re-score finished members from their saved weights (after a change of the evaluation, not of training)."""
    from backend.robustness.model import build

    d, n = _dir(), 0
    for i, c in enumerate(configs):
        mid = member_id(c, seed)
        if i % shards != shard or not (d / f"{mid}.json").exists():
            continue
        old = json.loads((d / f"{mid}.json").read_text())
        net = build(c["arch"])
        net.load_state_dict(weights_of(mid))
        row = row_of(net.eval(), c, seed, old["train_s"], old["steps"], old["params"])
        (d / f"{mid}.json").write_text(json.dumps(row))
        n += 1
        log(f"re-scored {mid}: ID {row['id_acc']:.3f}")
    return n


def finished_rows(seed: int = SEED) -> list[dict]:
    """Rows already finished in runs/ (for a progress look while the zoo trains)."""
    return [json.loads(p.read_text()) for p in sorted(_dir().glob("*.json"))]


def weights_of(mid: str) -> dict | None:
    import torch

    p = _dir() / f"{mid}.pt"
    return torch.load(p, weights_only=True) if p.exists() else None
