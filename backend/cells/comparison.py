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
        """CFGen's per-type table beside the baseline's."""
        per = self.cfgen["per_type"].copy()
        if self.baseline is not None:
            cols = ["type", "w2", "rbf_mmd", "knn_f1", "centroid_offset", "spread_ratio"]
            per = per.merge(self.baseline["per_type"][cols], on="type", suffixes=("", " (NB)"))
        return per.round(3)

    def title(self) -> str:
        return (f"**These {self.n_gen:,} generated cells vs {self.n_test:,} held-out real cells** "
                f"({'per ' + self.by if self.by else 'all cells pooled'}, 30 PCs fit on the held-out cells; lower "
                "is better except 5-NN F1, where 0.5 means indistinguishable)")

    def headline(self) -> list[tuple]:
        """(label, value, delta vs the NB baseline, delta colour) for W2, RBF-MMD and 5-NN F1."""
        nb, out = self.baseline, []
        for key, label in (("w2", "W2"), ("rbf_mmd", "RBF-MMD"), ("knn_f1", "5-NN F1")):
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
                "reference; any set looks less spread in PCs fit on the held-out cells).")


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
    """A model's own held-out evaluation, ready to show: metrics beside the baselines (from the card) and the
    validation choice, guidance sweep and augmentation (from the checkpoint's evaluation entry)."""

    summary: str
    readout: str = ""
    heldout: pd.DataFrame | None = None
    validation_note: str = ""
    validation: pd.DataFrame | None = None
    sweep: pd.DataFrame | None = None
    reference_note: str = ""
    augmentation: dict | None = None


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
    if "rbf_mmd" in m:
        rows = [("CFGen", "", "_sem"), ("per-gene NB per type (baseline)", "nb_", None),
                ("real training cells (reference)", "real_train_", None)]
        src = {"": m, "nb_": b, "real_train_": b}
        out.heldout = pd.DataFrame([{"model": name, **{label: _value(src[p], p + key, p == "" and sem)
                                                        for label, key in (("RBF-MMD", "rbf_mmd"), ("W2", "w2"),
                                                                           ("W2, types ≥ 20 cells", "w2_types_ge20"),
                                                                           ("5-NN F1", "knn_f1"))}}
                                    for name, p, sem in rows])
    v = ev.get("validation")
    if v:
        out.validation = pd.DataFrame(v["rows"]).round(3)
        out.validation_note = (f"Guidance and ODE steps chosen on validation ({v['n_val']} training cells held back "
                               f"from a model trained on the other {v['n_fit']}; NB baseline there: W2 "
                               f"{v['nb']['w2']:.3f}, RBF-MMD {v['nb']['rbf_mmd']:.3f}):")
    if ev.get("guidance_sweep"):
        out.sweep = pd.DataFrame(ev["guidance_sweep"]).round(3)
    return out


def _value(d: dict, key: str, with_sem) -> str:
    v = d.get(key)
    if v is None:
        return "–"
    sem = d.get(key + "_sem") if with_sem else None
    return f"{v:.3f}" + (f" ± {sem:.3f}" if sem is not None else "")
