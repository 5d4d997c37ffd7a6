"""`dci_es`: score a representation (codes) against known factors of variation with DCI-ES.

Eastwood, Nicolicioiu, von Kügelgen, Kekić, Träuble, Dittadi, Schölkopf, "DCI-ES: An Extended
Disentanglement Framework with Connections to Identifiability", ICLR 2023 (arXiv:2210.00364), code in
andreinicolicioiu/DCI-ES; DCI from Eastwood & Williams, ICLR 2018.

Recipe: split the samples 70/30 into train/test; for each factor train probes over a capacity grid and
record the test loss (1 − R² or 1 − accuracy); the factor's I is 1 − its best loss and its importance
column comes from the probe at that capacity (DCI-ES reports D, C, I at the best-informativeness
capacity, chosen on the test split as their scripts do). D and C come from the importance matrix, E from
the loss-capacity curves, S = K / L.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from backend.core.progress import as_progress
from backend.disentangle import metrics as M
from backend.disentangle.probes import AXIS, PROBES, Targets, check_capacities, run_probe

MIN_SAMPLES = 20
MAX_CLASSES = 100
MAX_INFER_CLASSES = 50


@dataclass
class DCIResult:
    D: float
    C: float
    I: float  # noqa: E741  (the paper's name)
    E: float
    S: float
    importance: np.ndarray                  # (L, K), columns sum to the probes' importances
    per_factor: pd.DataFrame                # index: factor names; I, E, C, E_strict, baseline, ...
    curves: dict                            # factor -> (capacities as plotted, test losses)
    per_code: pd.DataFrame                  # index: code names; D, weight
    C_mean: float = 0.0                     # unweighted mean of per-factor C (qedr)
    E_strict: float = 0.0                   # E with the area taken above zero loss
    probe: str = "rf"
    axis: str = ""
    factor_names: list = field(default_factory=list)
    code_names: list = field(default_factory=list)
    n_train: int = 0
    n_test: int = 0
    seconds: float = 0.0

    def scores(self) -> dict:
        return {"D": self.D, "C": self.C, "I": self.I, "E": self.E, "S": self.S,
                "C_mean": self.C_mean, "E_strict": self.E_strict}

    def running_curves(self) -> dict:
        """factor -> (capacities, running minimum of the test loss): the curve whose area E measures."""
        return {name: (x, M.running_min(y)) for name, (x, y) in self.curves.items()}

    def importance_frame(self) -> pd.DataFrame:
        """The importance matrix R with code names (rows) and factor names (columns)."""
        return pd.DataFrame(self.importance, index=self.code_names, columns=self.factor_names)


def _as_matrix(x, what: str) -> np.ndarray:
    if isinstance(x, pd.DataFrame):
        bad = [c for c in x.columns if not pd.api.types.is_numeric_dtype(x[c]) and not pd.api.types.is_bool_dtype(x[c])]
        if bad:
            raise ValueError(f"The {what} column {bad[0]!r} is not numeric; encode it as numbers first.")
        x = x.to_numpy()
    try:
        a = np.asarray(x, dtype=float)
    except (TypeError, ValueError) as e:
        raise ValueError(f"The {what} must be numbers (a float array); they could not be converted.") from e
    if a.ndim == 1:
        a = a[:, None]
    if a.ndim != 2:
        raise ValueError(f"The {what} must be a 2-D array (samples × dimensions); got shape {a.shape}.")
    return a


def _check_finite(a: np.ndarray, what: str, names) -> None:
    bad = ~np.isfinite(a)
    if bad.any():
        r, c = np.argwhere(bad)[0]
        raise ValueError(f"The {what} contain {int(bad.sum())} NaN or infinite value(s), first in row {r}, "
                         f"column {names[c]!r}; remove or impute those rows.")


def infer_discrete(factors) -> np.ndarray:
    """A factor is discrete when all its values are integers and it takes at most 50 distinct values."""
    f = _as_matrix(factors, "factors")
    out = []
    for col in f.T:
        fin = col[np.isfinite(col)]
        out.append(bool(fin.size and np.all(fin == np.round(fin)) and len(np.unique(fin)) <= MAX_INFER_CLASSES))
    return np.array(out, dtype=bool)


@dataclass
class _Inputs:
    """Checked inputs of `dci_es`: numeric matrices, names, discrete flags, and the train/test split."""

    X: np.ndarray  # codes (N, L), standardised on the training split
    Z: np.ndarray  # factors (N, K), discrete ones as class ids
    factor_names: list
    code_names: list
    discrete: np.ndarray
    n_classes: np.ndarray
    baseline: np.ndarray  # loss of the best constant predictor per factor (training split)
    train: np.ndarray
    test: np.ndarray


def dci_es(codes, factors, discrete=None, probe: str = "rf", capacities=None, seed: int = 0, progress=None,
           *, factor_names=None, code_names=None, test_fraction: float = 0.3) -> DCIResult:
    """DCI-ES scores of `codes` (N, L) for `factors` (N, K); see the module docstring.

    `discrete`: bool (K,) or None (integer-valued columns with ≤ 50 values are discrete); `probe`: one of
    rf, gbt, lasso, mlp; `capacities`: the probe's grid (tree depths, MLP widths, or numbers of random
    features; None = default); `progress`: callable(step, total, message) or Progress (may cancel).
    """
    t0 = time.time()
    if probe not in PROBES:
        raise ValueError(f"Unknown probe {probe!r}; choose one of: {', '.join(PROBES)}.")
    caps = check_capacities(probe, capacities)
    x = _checked_inputs(codes, factors, discrete, factor_names, code_names, test_fraction, seed)
    K = x.Z.shape[1]
    p = as_progress(progress)
    total = {"rf": K, "gbt": K * len(caps), "lasso": K * len(caps), "mlp": len(caps)}[probe]
    step = [0]

    def tick(msg: str) -> None:
        p.update(step[0], total, msg)
        step[0] += 1

    t = Targets(x.Z[x.train], x.Z[x.test], x.discrete, x.n_classes, x.baseline)
    x_axis, losses, imps = run_probe(probe, x.X[x.train], x.X[x.test], t, caps, seed, tick)
    p.update(total, total, "scores")
    return _result(x, probe, caps, x_axis, losses, imps, time.time() - t0)


def _checked_inputs(codes, factors, discrete, factor_names, code_names, test_fraction, seed) -> _Inputs:
    """Validate and name the inputs (ValueError says what to fix), split them, encode discrete factors."""
    if factor_names is None and isinstance(factors, pd.DataFrame):
        factor_names = [str(c) for c in factors.columns]
    if code_names is None and isinstance(codes, pd.DataFrame):
        code_names = [str(c) for c in codes.columns]
    X, Z = _as_matrix(codes, "codes"), _as_matrix(factors, "factors")
    (N, L), K = X.shape, Z.shape[1]
    factor_names = [str(n) for n in (factor_names or [f"z{j + 1}" for j in range(K)])]
    code_names = [str(n) for n in (code_names or [f"c{i + 1}" for i in range(L)])]
    if len(factor_names) != K or len(code_names) != L:
        raise ValueError(f"Got {len(factor_names)} factor names for {K} factors and {len(code_names)} code names "
                         f"for {L} code dimensions; they must match.")
    if Z.shape[0] != N:
        raise ValueError(f"The codes have {N} rows but the factors have {Z.shape[0]}; "
                         "each row must be the same sample in both.")
    if N < MIN_SAMPLES:
        raise ValueError(f"DCI-ES needs at least {MIN_SAMPLES} samples to split into train and test; got {N}.")
    if L == 0 or K == 0:
        raise ValueError("The codes and the factors need at least one column each.")
    _check_finite(X, "codes", code_names)
    _check_finite(Z, "factors", factor_names)
    for j in range(K):
        if np.all(Z[:, j] == Z[0, j]):
            raise ValueError(f"The factor {factor_names[j]!r} is constant ({Z[0, j]:g}); nothing can predict "
                             "its variation, so drop it.")
    if not 0.05 <= test_fraction <= 0.5:
        raise ValueError("test_fraction must be between 0.05 and 0.5.")
    n_test = max(int(round(test_fraction * N)), 5)
    n_train = N - n_test
    if L >= n_train:
        raise ValueError(f"The code has {L} dimensions but only {n_train} training samples (of {N}); "
                         "use more samples than code dimensions, or reduce the code first (e.g. PCA).")
    order = np.random.default_rng(seed).permutation(N)
    tr, te = order[:n_train], order[n_train:]
    disc = _discrete_flags(Z, discrete)
    Zenc, n_classes, baseline = _encode_factors(Z, disc, tr, factor_names)
    # codes are standardised (tree probes do not care; linear and MLP probes do)
    mu, sd = X[tr].mean(0), X[tr].std(0)
    Xs = (X - mu) / np.where(sd > 0, sd, 1.0)
    return _Inputs(Xs, Zenc, factor_names, code_names, disc, n_classes, baseline, tr, te)


def _discrete_flags(Z: np.ndarray, discrete) -> np.ndarray:
    if discrete is None:
        return infer_discrete(Z)
    disc = np.asarray(discrete, dtype=bool).reshape(-1)
    if disc.shape != (Z.shape[1],):
        raise ValueError(f"`discrete` needs one flag per factor ({Z.shape[1]}); got {disc.size}.")
    return disc


def _encode_factors(Z: np.ndarray, disc: np.ndarray, tr: np.ndarray, factor_names: list):
    """Discrete factors as class ids; per factor the loss of the best constant predictor on the training split
    (1 for continuous factors, 1 - the majority share for discrete ones)."""
    Zenc = Z.copy()
    K = Z.shape[1]
    n_classes = np.zeros(K, dtype=int)
    baseline = np.ones(K)
    for j in np.nonzero(disc)[0]:
        values, Zenc[:, j] = np.unique(Z[:, j], return_inverse=True)
        n_classes[j] = len(values)
        if len(values) > MAX_CLASSES:
            raise ValueError(f"The factor {factor_names[j]!r} has {len(values)} distinct values, too many for a "
                             f"discrete factor (at most {MAX_CLASSES}); mark it continuous.")
    for j in np.nonzero(disc)[0]:
        counts = np.bincount(Zenc[tr, j].astype(int), minlength=n_classes[j])
        baseline[j] = 1.0 - counts.max() / counts.sum()
        if baseline[j] <= 0:
            raise ValueError(f"The factor {factor_names[j]!r} takes a single value in the training split; "
                             "add samples where it varies, or drop it.")
    return Zenc, n_classes, baseline


def _result(x: _Inputs, probe: str, caps, x_axis, losses, imps, seconds: float) -> DCIResult:
    """Scores from the probes' loss-capacity curves and importances (D, C, I at the best capacity)."""
    K, L = x.Z.shape[1], x.X.shape[1]
    best = losses.argmin(axis=1)                              # per factor, first capacity with the best loss
    R = np.stack([imps[best[j], :, j] for j in range(K)], axis=1)
    info = 1.0 - losses[np.arange(K), best]
    E = np.array([M.explicitness(x_axis, losses[j], x.baseline[j]) for j in range(K)])
    E_strict = np.array([M.explicitness(x_axis, losses[j], x.baseline[j], lstar=0.0) for j in range(K)])
    per_factor = pd.DataFrame({
        "I": info, "E": E, "C": M.completeness_per_factor(R), "E_strict": E_strict, "baseline_loss": x.baseline,
        "best_capacity": np.asarray(caps)[best], "discrete": x.discrete,
        "I_kind": np.where(x.discrete, "accuracy", "R²"),
        "importance_share": R.sum(0) / R.sum() if R.sum() > 0 else np.zeros(K),
    }, index=pd.Index(x.factor_names, name="factor"))
    per_code = pd.DataFrame({"D": M.disentanglement_per_code(R),
                             "weight": R.sum(1) / R.sum() if R.sum() > 0 else np.zeros(L)},
                            index=pd.Index(x.code_names, name="code"))
    return DCIResult(
        D=M.disentanglement(R), C=M.completeness(R), I=float(info.mean()), E=float(E.mean()), S=M.size(L, K),
        importance=R, per_factor=per_factor,
        curves={n: (x_axis.copy(), losses[j].copy()) for j, n in enumerate(x.factor_names)},
        per_code=per_code, C_mean=M.completeness(R, weighted=False), E_strict=float(E_strict.mean()),
        probe=probe, axis=AXIS[probe], factor_names=x.factor_names, code_names=x.code_names,
        n_train=len(x.train), n_test=len(x.test), seconds=seconds,
    )


def scores_frame(results: dict) -> pd.DataFrame:
    """One row per representation (name -> DCIResult): D, C, I, E, S and the variants."""
    rows = []
    for name, r in results.items():
        rows.append({"representation": name, **{k: round(v, 4) for k, v in r.scores().items()}, "probe": r.probe,
                     "codes (L)": len(r.code_names), "factors (K)": len(r.factor_names),
                     "n_train": r.n_train, "n_test": r.n_test, "seconds": round(r.seconds, 2)})
    return pd.DataFrame(rows)


def factors_frame(results: dict) -> pd.DataFrame:
    """One row per (representation, factor): I, E, C, E_strict, baseline loss, best capacity."""
    frames = []
    for name, r in results.items():
        f = r.per_factor.reset_index()
        f.insert(0, "representation", name)
        f.insert(1, "probe", r.probe)
        frames.append(f)
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()


def scores_csv(results: dict) -> bytes:
    """All scores as one CSV: overall rows (factor = "ALL") followed by the per-factor rows."""
    s = scores_frame(results)
    if s.empty:
        return b""
    s = s.assign(factor="ALL")
    f = factors_frame(results)
    return pd.concat([s, f], ignore_index=True).to_csv(index=False, float_format="%.4f").encode()
