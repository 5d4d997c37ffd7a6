"""ID/OOD pairs over the zoo table: which pairs exist, the probit fit of one pair, a table of all pairs,
a held-out check of the fit, the paired effect of interventions and the proxies of OOD accuracy."""

from __future__ import annotations

import numpy as np
import pandas as pd

from backend.robustness.data import NATURAL
from backend.robustness.metrics import probit, probit_fit
from backend.robustness.shifts import KINDS, SEVERITIES

NATURAL_PAIRS = [("mnist", "uci"), ("mnist", "fonts"), ("uci", "mnist"), ("fonts", "mnist"), ("uci", "fonts"),
                 ("fonts", "uci")]


def _frame(zoo) -> pd.DataFrame:
    return zoo if isinstance(zoo, pd.DataFrame) else pd.DataFrame(list(zoo))


def pair_rows(zoo, id_domain: str, ood: str, include_near_chance: bool = False) -> pd.DataFrame:
    """The members trained on `id_domain` that have an accuracy on `ood` (a natural domain or 'kind/severity')."""
    df = _frame(zoo)
    if id_domain not in NATURAL:
        raise ValueError(f"Unknown ID domain {id_domain!r}; choose one of {', '.join(NATURAL)}.")
    if ood == id_domain or f"acc:{ood}" not in df.columns:
        raise ValueError(f"Unknown OOD domain {ood!r} for ID {id_domain!r}: use another natural domain or a "
                         f"'kind/severity' shift such as 'rotation/3'.")
    sel = df[df["id_domain"] == id_domain]
    if not include_near_chance:
        sel = sel[~sel["near_chance"].astype(bool)]
    return sel


def fit_pair(zoo, id_domain: str, ood: str) -> dict:
    """Probit fit of OOD on ID accuracy over the zoo's non-near-chance members: slope, intercept, r2, tau,
    intervals (95% bootstrap) and n."""
    sel = pair_rows(zoo, id_domain, ood)
    return probit_fit(sel["id_acc"].to_numpy(), sel[f"acc:{ood}"].to_numpy())


def pair_table(rows) -> list[dict]:
    """Every natural pair and every synthetic shift (on MNIST) with enough members, fitted."""
    df = _frame(rows)
    out = []
    pairs = [p for p in NATURAL_PAIRS] + [("mnist", f"{k}/{s}") for k in KINDS for s in SEVERITIES]
    for a, b in pairs:
        try:
            f = fit_pair(df, a, b)
        except ValueError:
            continue
        out.append({"pair": f"{a}->{b}", "id": a, "ood": b, **{k: f[k] for k in ("slope", "r2", "tau", "n")},
                    "r2_ci": f["intervals"]["r2"], "slope_ci": f["intervals"]["slope"]})
    return out


def heldout_prediction(rows, seed: int = 0) -> dict:
    """Split the MNIST members in half; fit each pair on one half and predict the other half's OOD accuracy
    from its ID accuracy. Mean absolute error of that fit vs the naive 'OOD = ID' guess, over all pairs."""
    df = _frame(rows)
    df = df[(df["id_domain"] == "mnist") & ~df["near_chance"].astype(bool)]
    rng = np.random.default_rng(seed)
    half = rng.random(len(df)) < 0.5
    fit_err, id_err = [], []
    from scipy.stats import norm

    for ood in ["uci", "fonts"] + [f"{k}/{s}" for k in KINDS for s in SEVERITIES]:
        a, b = df[half], df[~half]
        if len(a) < 3 or len(b) < 1:
            continue
        f = probit_fit(a["id_acc"], a[f"acc:{ood}"], n_boot=0)
        pred = norm.cdf(f["intercept"] + f["slope"] * probit(b["id_acc"]))
        fit_err.append(np.abs(pred - b[f"acc:{ood}"].to_numpy()))
        id_err.append(np.abs(b["id_acc"].to_numpy() - b[f"acc:{ood}"].to_numpy()))
    if not fit_err:
        return {"fit_mae": None, "identity_mae": None}
    return {"fit_mae": round(float(np.mean(np.concatenate(fit_err))), 4),
            "identity_mae": round(float(np.mean(np.concatenate(id_err))), 4)}


INTERVENTIONS = ("arch", "aug", "epochs", "lr", "shots", "transfer")


def paired_effects(zoo, id_domain: str, ood: str, intervention: str, reference) -> pd.DataFrame:
    """Members that differ only in `intervention`: mean change of ID accuracy and of the OOD residual
    (OOD accuracy above or below the probit fit) against the `reference` value, per other value."""
    df = pair_rows(zoo, id_domain, ood).copy()
    if intervention not in INTERVENTIONS:
        raise ValueError(f"Unknown intervention {intervention!r}; choose one of {', '.join(INTERVENTIONS)}.")
    f = probit_fit(df["id_acc"], df[f"acc:{ood}"], n_boot=0)
    df["residual"] = probit(df[f"acc:{ood}"]) - (f["intercept"] + f["slope"] * probit(df["id_acc"]))
    others = [k for k in INTERVENTIONS if k != intervention and k not in ("epochs", "lr")]
    if intervention in ("epochs", "lr"):
        others = [k for k in INTERVENTIONS if k not in ("epochs", "lr")]
    out = []
    for _, g in df.groupby(others):
        ref = g[g[intervention] == reference]
        if ref.empty:
            continue
        for val, h in g[g[intervention] != reference].groupby(intervention):
            out.append({"value": val, "d_id_acc": h["id_acc"].mean() - ref["id_acc"].mean(),
                        "d_ood_acc": h[f"acc:{ood}"].mean() - ref[f"acc:{ood}"].mean(),
                        "d_residual": h["residual"].mean() - ref["residual"].mean()})
    if not out:
        return pd.DataFrame(columns=["value", "pairs", "d_id_acc", "d_ood_acc", "d_residual"])
    t = pd.DataFrame(out)
    agg = t.groupby("value").agg(pairs=("d_id_acc", "size"), d_id_acc=("d_id_acc", "mean"),
                                 d_ood_acc=("d_ood_acc", "mean"), d_residual=("d_residual", "mean"))
    return agg.reset_index()


PROXIES = {"ID accuracy": "id_acc", "ID ECE (lower better)": "ece:{id}", "ID NLL (lower better)": "nll:{id}",
           "PGD accuracy": "pgd_acc", "corruption accuracy": "corruption_acc"}


def proxy_ranking(zoo, id_domain: str, ood: str) -> pd.DataFrame:
    """Kendall tau between each proxy and OOD accuracy over the members (sign flipped for lower-is-better
    proxies, so higher always means a better predictor). For a synthetic OOD domain the corruption proxy
    leaves that shift's own five severities out."""
    from scipy.stats import kendalltau

    df = pair_rows(zoo, id_domain, ood)
    y = df[f"acc:{ood}"].to_numpy()
    rows = []
    for label, col in PROXIES.items():
        col = col.format(id=id_domain)
        x = df[col].to_numpy(float)
        if col == "corruption_acc" and "/" in ood:
            kind = ood.split("/")[0]
            cols = [f"acc:{k}/{s}" for k in KINDS if k != kind for s in SEVERITIES]
            x = df[cols].to_numpy(float).mean(1)
            label = "corruption accuracy (other shifts)"
        sign = -1 if "lower" in label else 1
        tau = kendalltau(sign * x, y).statistic if len(y) > 2 else float("nan")
        rows.append({"proxy": label, "kendall_tau": float(tau), "n": int(len(y))})
    return pd.DataFrame(rows).sort_values("kendall_tau", ascending=False).reset_index(drop=True)
