"""The held-out evaluation of a CFGen checkpoint: CFGen vs the per-gene NB baseline and real training cells on
cells the model never saw (one pass over the test cells at the setting chosen on validation), the choice of
guidance weight on a validation split of the training cells, and the card fields these fill.

Headline measures (no sample-size artefacts): W2 over all held-out cells pooled, and the per-type unbiased MMD^2
and W2 averaged over types with >= 20 held-out cells; each with a 95% interval over generation seeds. CFGen's own
protocol (biased RBF-MMD and W2 averaged over every type) is kept beside them as the paper's version.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from backend.cells.augmentation import augmentation_experiment
from backend.cells.metrics import LARGE, baseline_cells, evaluate, interval95, reference_cells
from backend.cells.threads import one_thread

MEASURES = ("w2_pooled", "mmd2_u_large", "w2_large", "mmd2_u", "rbf_mmd", "w2", "knn_f1", "spread_ratio")
PER_TYPE = ("w2", "mmd2_u", "rbf_mmd", "spread_ratio")
VAL_LARGE = 10  # the validation split holds 105 cells: per-type MMD^2 there averages types with >= 10 cells


def summarise(evals: list[dict], measures=MEASURES) -> dict:
    """Mean, 95% interval (`_lo`, `_hi`) and standard error (`_sem`) over generation seeds of each measure."""
    d = {}
    for m in measures:
        v = np.array([e[m] for e in evals], np.float64)
        d[m], d[m + "_lo"], d[m + "_hi"] = interval95(v)
        d[m + "_sem"] = float(v.std(ddof=1) / np.sqrt(len(v))) if len(v) > 1 else 0.0
    return d


def compare_to_baseline(model, train, test, by: str = "cell_type", replicates=tuple(range(10)),
                        steps: int | None = None, guidance=None) -> dict:
    """CFGen vs the NB baseline and real training cells on held-out `test`: one generated (or drawn) cell per
    held-out cell of the same type, per generation seed; `summarise`d over the seeds, plus a per-type table (list
    of dicts; `too_small` marks types with < 20 held-out cells, listed but not ranked)."""
    res = {"cfgen": [], "baseline": [], "real_train": []}
    per = []
    labels = test.obs[by].astype(str).to_numpy()
    for r in replicates:
        gen = model.generate(len(test), conditions=pd.DataFrame({by: labels}), seed=r, steps=steps,
                             guidance=guidance)
        e = {"cfgen": evaluate(test, gen, by=by),
             "baseline": evaluate(test, baseline_cells(train, labels, by, seed=r), by=by),
             "real_train": evaluate(test, reference_cells(train, labels, by, seed=r), by=by)}
        for k, v in e.items():
            res[k].append(v)
        base = e["cfgen"]["per_type"].set_index("type")[["n_real", "too_small"]]
        per.append(base.join([e[k]["per_type"].set_index("type")[list(PER_TYPE)].add_prefix(p)
                              for k, p in (("cfgen", "cfgen_"), ("baseline", "nb_"), ("real_train", "real_"))]))
    out = {k: summarise(lst) for k, lst in res.items()}
    table = pd.concat(per).groupby(level=0, sort=False).mean().reset_index()
    table["too_small"] = table["too_small"].astype(bool)
    table = table.sort_values("n_real", ascending=False).round(4).astype(object)
    out["per_type"] = table.where(table.notna(), None).to_dict(orient="records")  # NaN -> null in the JSON
    return out


def plain(value):
    """Nested dicts / lists of numpy scalars as plain Python values (NaN -> None), so the checkpoint payload that
    holds them loads with `torch.load(weights_only=True)`."""
    if isinstance(value, dict):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    if isinstance(value, (np.generic, float)):
        v = value.item() if isinstance(value, np.generic) else value
        return None if isinstance(v, float) and not np.isfinite(v) else v
    return value


@one_thread
def select_guidance(model, fit_cells, val_cells, weights, steps_grid, default_steps: int, seeds=tuple(range(10)),
                    large: int = VAL_LARGE) -> dict:
    """The cell-type guidance weight (and a check of the ODE step count) chosen on validation cells, for a model
    trained on `fit_cells` only: the lowest W2_pooled / W2_pooled(NB) + MMD2_u / MMD2_u(NB), with the unbiased
    MMD^2 averaged over types with >= `large` validation cells; means over generation `seeds`."""
    labels = val_cells.obs["cell_type"].astype(str).to_numpy()
    cond = pd.DataFrame({"cell_type": labels})
    keys = ("w2_pooled", "mmd2_u_large")

    def mean(evals):
        return {k: round(float(np.mean([e[k] for e in evals])), 4) for k in keys}

    nb = mean([evaluate(val_cells, baseline_cells(fit_cells, labels, "cell_type", seed=r), large=large)
               for r in seeds])

    def row(w, st):
        m = mean([evaluate(val_cells, model.generate(len(val_cells), conditions=cond, guidance={"cell_type": w},
                                                     seed=r, steps=st), large=large) for r in seeds])
        score = m["w2_pooled"] / nb["w2_pooled"] + m["mmd2_u_large"] / nb["mmd2_u_large"]
        return {"guidance": float(w), "steps": int(st), **m, "score": round(score, 4)}

    rows = [row(w, default_steps) for w in weights]
    best = min(rows, key=lambda r: r["score"])
    rows += [row(best["guidance"], st) for st in steps_grid if st != default_steps]
    return {"guidance": best["guidance"], "n_fit": int(fit_cells.n_obs), "n_val": int(val_cells.n_obs), "nb": nb,
            "min_cells": int(large), "seeds": len(seeds), "rows": rows}


def heldout_report(model, train, test, guidance: float, seeds, aug_seeds) -> dict:
    """Metrics and baselines of `model` on held-out `test` cells at the chosen cell-type guidance (the only pass
    over the test cells with this model), plus the detail (per-type table, augmentation) kept in the checkpoint's
    evaluation entry."""
    comp = compare_to_baseline(model, train, test, by="cell_type", replicates=seeds, guidance={"cell_type": guidance})
    aug = augmentation_experiment(model, train, test, seeds=aug_seeds, guidance={"cell_type": guidance})
    keep = ("w2_pooled", "mmd2_u_large", "w2_large")
    iv = [k + s for k in keep for s in ("", "_lo", "_hi")]
    paper = ("rbf_mmd", "w2", "knn_f1")  # CFGen's protocol: every type with >= 2 cells, biased RBF-MMD
    m, b, rt = comp["cfgen"], comp["baseline"], comp["real_train"]
    metrics = {**{k: m[k] for k in iv}, **{k: m[k] for k in paper},
               **{k: aug["summary"][k] for k in ("rare_f1_real_only", "rare_f1_augmented", "macro_f1_real_only",
                                                  "macro_f1_augmented")}}
    baselines = {**{"nb_" + k: b[k] for k in (*iv, *paper)}, **{"real_train_" + k: rt[k] for k in (*iv, *paper)}}
    detail = {"per_type": comp["per_type"], "augmentation": aug, "seeds": list(seeds), "min_cells": LARGE,
              "types_ge20": [r["type"] for r in comp["per_type"] if not r["too_small"]],
              "n_eval": int(test.n_obs), "n_train": int(train.n_obs)}
    return {"metrics": metrics, "baselines": baselines, "detail": detail}
