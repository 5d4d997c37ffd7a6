"""Learners on several graphs, for the card: `python -m backend.causal.sweep run LEARNER GRAPH_SEED STEPS` trains
the recipe (no checkpoint) on the random 5-node graph `GRAPH_SEED` (3 is the default graph) and writes its scores
on validation pairs (seed VAL_SEED) and held-out pairs (seed EVAL_SEED) to runs/causal-sweep/; `merge` picks the
PC alpha on the validation pairs only and writes the held-out summary (mean and worst over graphs) into the cards.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import numpy as np

from backend.causal import data as D
from backend.causal.analysis import discover_graph, graph_scores, learned_codes, match

VAL_SEED = 555           # validation pairs: every choice (PC alpha, steps) is made on these
ALPHAS = (0.01, 0.001, 0.0001)
GRAPH_SEEDS = (3, 1, 2, 4)  # 3: the default graph; 1, 2, 4: three other random 5-node graphs
OUT = Path("runs/causal-sweep")


def scores(model, scm: D.SCM, observation: str, seed: int, n: int = 2000) -> dict:
    """MCC, target accuracy and SHD (learned and oracle) at every alpha on n pairs of `seed`."""
    pairs = scm.pairs(n, seed=seed)
    m = match(learned_codes(model, scm, pairs, observation), pairs["z"])
    out = {"mcc": m.mcc, "target_accuracy": float(np.mean(m.targets == pairs["target"]))}
    for alpha in ALPHAS:
        est = discover_graph(m.c1, m.c2, m.targets, "pc", alpha, True)
        ora = discover_graph(pairs["z"], pairs["z_tilde"], pairs["target"], "pc", alpha, True)
        out[f"shd@{alpha}"] = graph_scores(scm.adjacency, est)["shd"]
        out[f"oracle_shd@{alpha}"] = graph_scores(scm.adjacency, ora)["shd"]
    return out


def run(learner: str, graph_seed: int, steps: int, observation: str = "vector", sparsity: float = 0.0) -> dict:
    """Train and score one learner on one graph; `sparsity` > 0: the ablation (file prefixed `ablation-`)."""
    from backend.causal.learner import EVAL_SEED
    from backend.causal.train import RECIPES
    from backend.core.training import train

    adj = D.template("random", 5, seed=int(graph_seed))
    recipe = RECIPES[f"causal-{learner}"](adjacency=adj.tolist(), observation=observation, sparsity=float(sparsity))
    recipe.held_out = False
    t = time.time()
    train(recipe, steps=int(steps), device="cpu", seed=0, save=False)
    model, scm = recipe.model.cpu().eval(), recipe.scm()
    row = {"learner": learner, "graph_seed": int(graph_seed), "observation": observation, "steps": int(steps),
           "sparsity": float(sparsity),
           "train_s": round(time.time() - t, 1), "val": scores(model, scm, observation, VAL_SEED),
           "test": scores(model, scm, observation, EVAL_SEED)}
    OUT.mkdir(parents=True, exist_ok=True)
    prefix = f"ablation-sparsity{sparsity:g}-" if sparsity else ""
    (OUT / f"{prefix}{learner}-{observation}-{graph_seed}.json").write_text(json.dumps(row, indent=1))
    return row


def graph_row(r: dict) -> dict:
    """One graph's held-out figures at the PC alpha with the lowest validation SHD on that graph."""
    alpha = min(ALPHAS, key=lambda a: r["val"][f"shd@{a}"])
    return {"graph_seed": r["graph_seed"], "alpha": alpha, "mcc": r["test"]["mcc"], "shd": r["test"][f"shd@{alpha}"],
            "oracle_shd": r["test"][f"oracle_shd@{alpha}"]}


def summary(rows: list[dict]) -> dict:
    """Mean and worst held-out MCC and SHD excess over the oracle across the graphs' rows."""
    mcc = [r["mcc"] for r in rows]
    excess = [r["shd"] - r["oracle_shd"] for r in rows]
    return {"mcc_mean": float(np.mean(mcc)), "mcc_worst": float(np.min(mcc)),
            "shd_excess_mean": float(np.mean(excess)), "shd_excess_worst": float(np.max(excess)), "per_graph": rows}


def merge(observation: str = "vector") -> dict:
    """Write each learner's summary over the default graph and the sweep's graphs into its card (metrics `graphs_*`)."""
    from backend.core.registry import CHECKPOINT_DIR

    out = {}
    for learner in ("dcrl", "vae"):
        runs = [json.loads(p.read_text()) for p in sorted(OUT.glob(f"{learner}-{observation}-*.json"))]
        ablations = [json.loads(p.read_text()) for p in sorted(OUT.glob(f"ablation-*-{learner}-{observation}-*.json"))]
        path = CHECKPOINT_DIR / f"causal-{learner}{'-image' if observation == 'image' else ''}.json"
        if not runs or not path.exists():
            continue
        card = json.loads(path.read_text())
        m = card["metrics"]
        default = {"graph_seed": D.DEFAULT_GRAPH_SEED, "alpha": m["alpha_on_validation"], "mcc": m["mcc"],
                   "shd": m["shd"], "oracle_shd": m["oracle_shd"]}
        out[learner] = s = summary([default] + [graph_row(r) for r in runs])
        m.update({f"graphs_{k}": s[k] for k in ("mcc_mean", "mcc_worst", "shd_excess_mean", "shd_excess_worst")})
        m["graphs_steps"] = runs[0]["steps"]
        for g in s["per_graph"]:
            m.update({f"graphs_g{g['graph_seed']}_{k}": g[k] for k in ("mcc", "shd", "oracle_shd", "alpha")})
        for r in ablations:  # the same recipe with the sparsity penalty on (default graph)
            g = graph_row(r)
            m.update({f"ablation_sparsity{r['sparsity']:g}_{k}": g[k] for k in ("mcc", "shd", "oracle_shd", "alpha")})
        card["targets"] = [t for t in card["targets"] if not t["metric"].startswith("graphs_")] + [
            {"metric": "graphs_mcc_worst", "threshold": 0.9, "value": s["mcc_worst"], "direction": ">="},
            {"metric": "graphs_shd_excess_worst", "threshold": 2, "value": s["shd_excess_worst"], "direction": "<="}]
        path.write_text(json.dumps(card, indent=1))
    _cross_baselines(CHECKPOINT_DIR)
    return out


def _cross_baselines(folder: Path) -> None:
    """Each vector card's baseline row of the other learner, from the other card as it is now (the two are trained
    side by side, so the one written first saw the other's previous card)."""
    cards = {n: folder / f"causal-{n}.json" for n in ("dcrl", "vae")}
    if not all(p.exists() for p in cards.values()):
        return
    read = {n: json.loads(p.read_text()) for n, p in cards.items()}
    for n, other in (("dcrl", "vae"), ("vae", "dcrl")):
        o = read[other]["metrics"]
        read[n]["baselines"][other] = {k: o.get(k) for k in ("mcc", "dci_disentanglement", "target_accuracy", "shd",
                                                             "shd_cpdag", "sid", "graphs_mcc_mean", "graphs_mcc_worst")}
        read[n]["headline"]["baseline"] = o["mcc"]
        cards[n].write_text(json.dumps(read[n], indent=1))


if __name__ == "__main__":
    if sys.argv[1] == "run":
        extra = sys.argv[5:7]
        print(json.dumps(run(sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), *extra[:1],
                             *[float(v) for v in extra[1:]])), flush=True)
    else:
        print(json.dumps(merge(*sys.argv[2:3]), indent=1))
