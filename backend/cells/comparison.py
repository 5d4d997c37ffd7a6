"""Generated cells measured against real cells the model never saw: CFGen next to the per-gene NB baseline and
real training cells of the same groups (distances in a PC space), and per-gene count realism."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from backend.cells.data import split_real
from backend.cells.metrics import baseline_cells, count_stats, evaluate, reference_cells
from backend.cells.threads import one_thread

MAX_EVAL_CELLS = 3000


@dataclass
class HeldoutComparison:
    """`evaluate` results (rbf_mmd, w2, knn_f1, spread_ratio, per_type ...) of CFGen, the NB baseline and
    real training cells (reference; None where no group has 2 training cells) on `n_test` held-out cells."""

    by: str | None
    n_test: int
    n_gen: int
    cfgen: dict
    baseline: dict | None = None
    real_train: dict | None = None

    def per_type(self) -> pd.DataFrame:
        """CFGen's per-type table beside the baseline's; `too_small` types (< 20 held-out cells) are not ranked."""
        per = self.cfgen["per_type"].copy()
        if self.baseline is not None:
            cols = ["type", "w2", "mmd2_u", "rbf_mmd", "knn_f1", "centroid_offset", "spread_ratio"]
            per = per.merge(self.baseline["per_type"][cols], on="type", suffixes=("", " (NB)"))
        per["too_small"] = per["too_small"].map({True: "too small to rank", False: ""})
        return per.round(3)

    def title(self) -> str:
        return (f"**These {self.n_gen:,} generated cells vs {self.n_test:,} held-out real cells** "
                f"({'per ' + self.by if self.by else 'all cells pooled'}, 30 PCs fit on the held-out cells; lower "
                "is better except 5-NN F1, where 0.5 means indistinguishable; per-type means over types with "
                ">= 20 held-out cells)")

    def headline(self) -> list[tuple]:
        """(label, value, delta vs the NB baseline, delta colour): pooled W2, and unbiased MMD^2 over the types
        with >= 20 held-out cells (over all matched types when none has 20)."""
        nb, out = self.baseline, []
        mmd = "mmd2_u_large" if self.cfgen["n_types_large"] else "mmd2_u"
        for key, label in (("w2_pooled", "W2, pooled"), (mmd, "MMD² unbiased"), ("knn_f1", "5-NN F1")):
            v = self.cfgen[key]
            delta = None if nb is None else f"{v - nb[key]:+.3f} vs NB baseline ({nb[key]:.3f})"
            out.append((f"{label} (CFGen)", f"{v:.3f}", delta, "off" if key == "knn_f1" else "inverse"))
        return out

    def spread_note(self) -> str:
        """What W2 mixes, with the mean spread ratios of CFGen, the baseline and real training cells."""
        spreads = [f"CFGen {self.cfgen['spread_ratio']:.2f}"] + [f"{n} {d['spread_ratio']:.2f}" for n, d in (
            ("NB baseline", self.baseline), ("real training cells", self.real_train)) if d is not None]
        return ("W2 mixes *centroid_offset* (distance between held-out and generated means) and *spread_ratio* "
                f"(generated RMS spread / held-out). Mean spread ratio: {', '.join(spreads)} (real cells: the "
                "reference; any set looks less spread in PCs fit on the held-out cells). MMD² is the unbiased "
                "estimate (~0 for two samples of one distribution; can dip below 0); rbf_mmd is CFGen's biased one.")


@dataclass
class CountRealism:
    """Per-gene count statistics of the held-out real cells of the chosen group and of the generated cells."""

    real: pd.DataFrame
    generated: pd.DataFrame
    n_real: int
    zero_frac_corr: float
    n_generated: int = 0

    def zeros(self) -> pd.DataFrame:
        return pd.DataFrame({"real": self.real["zero_frac"], "generated": self.generated["zero_frac"],
                             "gene": self.real["gene"]})

    def mean_var(self) -> pd.DataFrame:
        mv = pd.concat([self.real.assign(source="real"), self.generated.assign(source="generated")])
        return mv[(mv["mean"] > 0) & (mv["var"] > 0)]


@one_thread
def compare_heldout(model, real, gen, by: str | None = None, seed: int = 0) -> HeldoutComparison:
    """CFGen's generated cells, the NB baseline (same labels) and real training cells of the same groups, each
    against held-out real cells of those groups. ValueError when fewer than 2 held-out cells match."""
    train, test = split_real(model, real)
    if test.n_obs == 0:
        raise ValueError(NO_HELDOUT)
    if gen.n_obs > MAX_EVAL_CELLS:
        gen = gen[np.random.default_rng(seed).choice(gen.n_obs, MAX_EVAL_CELLS, replace=False)].copy()
    grouped = by is not None and by in gen.obs
    test_sel = test[test.obs[by].astype(str).isin(set(gen.obs[by].astype(str)))].copy() if grouped else test
    if test_sel.n_obs < 2:
        raise ValueError("Fewer than 2 held-out real cells match these conditions; choose a more common value.")
    out = HeldoutComparison(by if grouped else None, int(test_sel.n_obs), int(gen.n_obs),
                            evaluate(test_sel, gen, by=by))
    if grouped and by in train.obs:
        labels = gen.obs[by].astype(str).to_numpy()
        out.baseline = evaluate(test_sel, baseline_cells(train, labels, by, seed=seed), by=by)
        try:  # as many real training cells per group as generated, at most all of them
            out.real_train = evaluate(test_sel, reference_cells(train, labels, by, seed=seed, cap=True), by=by)
        except ValueError:
            pass
    return out


def comparison_cells(model, real, attribute: str | None = None, value: str | None = None):
    """Held-out real cells of `attribute == value` (all held-out cells when unset or fewer than 2 match)."""
    _, test = split_real(model, real)
    if attribute and value is not None and attribute in test.obs:
        sel = test[test.obs[attribute].astype(str) == str(value)]
        if sel.n_obs >= 2:
            return sel
    return test


def count_realism(model, real, gen, attribute: str | None = None, value: str | None = None) -> CountRealism:
    ref = comparison_cells(model, real, attribute, value)
    if ref.n_obs == 0:
        raise ValueError(NO_HELDOUT)
    rs, gs = count_stats(ref), count_stats(gen)
    r = float(np.corrcoef(rs["zero_frac"], gs["zero_frac"])[0, 1]) if len(rs) > 2 else float("nan")
    return CountRealism(rs, gs, int(ref.n_obs), r, int(gen.n_obs))


def augmentation_summary(aug: dict) -> list[tuple]:
    """(label, value with generated cells, change vs real cells only) of an augmentation experiment."""
    sm = aug["summary"]
    return [(label, f"{sm[key + '_augmented']:.3f}", f"{sm[key + '_augmented'] - sm[key + '_real_only']:+.3f} vs "
             "real only") for key, label in (("rare_f1", "Rare types, mean F1"), ("macro_f1", "Macro F1"),
                                             ("balanced_acc", "Balanced accuracy"))]


def rare_type_augmentation(model, real, by: str) -> dict:
    """The rare-type augmentation experiment on the model's own train / held-out split."""
    from backend.cells.augmentation import augmentation_experiment

    train, test = split_real(model, real)
    if test.n_obs == 0:
        raise ValueError(NO_HELDOUT)
    return augmentation_experiment(model, train, test, by=by)


@dataclass
class CheckpointReport:
    """A model's own held-out evaluation, ready to show: metrics with 95% intervals beside the baselines (from the
    card), the per-type table and the validation choice (from the checkpoint's evaluation entry)."""

    summary: str
    readout: str = ""
    heldout: pd.DataFrame | None = None
    per_type: pd.DataFrame | None = None
    validation_note: str = ""
    validation: pd.DataFrame | None = None
    reference_note: str = ""
    augmentation: dict | None = None


HEADLINE_COLUMNS = (("W2, all cells pooled", "w2_pooled"), ("MMD² unbiased, types ≥ 20", "mmd2_u_large"),
                    ("W2, types ≥ 20", "w2_large"), ("RBF-MMD, all types (CFGen's protocol)", "rbf_mmd"),
                    ("W2, all types (CFGen's protocol)", "w2"))

NO_HELDOUT = ("Metrics are unavailable: the uploaded file has too few cells to hold any out, so the model was "
              "trained on all of them. Upload at least 100 cells to measure it on held-out cells.")


def checkpoint_report(model, real) -> CheckpointReport:
    card, ev = model.card or {}, model.evaluation or {}
    info = getattr(model, "train_info", None)
    if info:
        summary = (f"Trained in {info['wall_seconds']:.0f} s: {info['ae_steps']} autoencoder + {info['flow_steps']} "
                   f"flow steps on {info['n_train']:,} cells × {info['n_genes']:,} genes ({info['n_test']:,} held "
                   "out)." + (" Metrics are unavailable: too few cells to hold any out." if not info["n_test"] else ""))
    else:
        summary = (f"Shipped checkpoint `{model.name}`: {real.n_obs} real cells × {real.n_vars} genes, attributes "
                   f"{', '.join(model.condition_keys)}; trained on {ev.get('n_train', '?')} cells, evaluated on "
                   f"{ev.get('n_eval', '?')} held-out cells.")
    out = CheckpointReport(summary, card.get("readout", ""), augmentation=ev.get("augmentation"),
                           reference_note=ev.get("reference_numbers", ""))
    m, b = card.get("metrics") or {}, card.get("baselines") or {}
    if "w2_pooled" in m:
        rows = [("CFGen", m, ""), ("per-gene NB per type (baseline)", b, "nb_"),
                ("real training cells (reference)", b, "real_train_")]
        out.heldout = pd.DataFrame([{"model": name, **{label: _value(d, p + key) for label, key in HEADLINE_COLUMNS}}
                                    for name, d, p in rows])
    if ev.get("per_type") and "too_small" in ev["per_type"][0]:
        per = pd.DataFrame(ev["per_type"])
        per["too_small"] = per["too_small"].map({True: "too small to rank", False: ""})
        out.per_type = per.round(3)
    v = ev.get("validation")
    if v and "w2_pooled" in v.get("nb", {}):
        out.validation = pd.DataFrame(v["rows"]).round(3)
        out.validation_note = (f"Guidance chosen on validation ({v['n_val']} training cells, split seed "
                               f"{v['val_seed']}, held back from a model trained on the other {v['n_fit']}; lowest "
                               f"W2/W2(NB) + MMD²/MMD²(NB), MMD² over types with ≥ {v['min_cells']} validation "
                               f"cells, {v['seeds']} seeds; NB there: W2 {v['nb']['w2_pooled']:.3f}, MMD² "
                               f"{v['nb']['mmd2_u_large']:.3f}):")
    return out


def _value(d: dict, key: str) -> str:
    """'mean [low, high]' (the 95% interval over generation seeds) or '–'."""
    v = d.get(key)
    if v is None:
        return "–"
    lo, hi = d.get(key + "_lo"), d.get(key + "_hi")
    return f"{v:.3f}" + (f" [{lo:.3f}, {hi:.3f}]" if lo is not None and hi is not None else "")
