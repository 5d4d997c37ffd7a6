"""Toy codes that show what each DCI-ES score means, and the parser for uploaded codes + factors.

Toy factors z are K independent uniforms on [-1, 1]; each toy code is a known function of them.
"""

from __future__ import annotations

import io

import numpy as np
import pandas as pd

from backend.core.uploads import as_bytes, check_size

TOY_CODES = {
    "identity": "c = z: one code per factor (ideal: D = C = I = 1)",
    "rotation": "c = zQ, Q a random rotation: fully informative but every code mixes every factor",
    "elementwise": "c_i = f_i(z_i) with invertible non-linear f (cube, exp, tanh, sinh): "
                   "disentangled, but a linear probe needs more capacity",
    "mixing": "c = tanh(2.5·zA)·B: an invertible non-linear mix of all factors",
    "redundant": "c = [z, z + 0.01·noise]: every factor twice (S = 0.5)",
    "missing": "c = [z_1 … z_{K-1}, noise]: the last factor is absent",
    "noise": "c ~ N(0, 1), independent of z: nothing to find (I ≈ 0)",
}
MAX_UPLOAD_BYTES = 50 * 1024 * 1024
MAX_ROWS = 200_000
MAX_COLUMNS = 512


def _orthogonal(k: int, rng) -> np.ndarray:
    q, r = np.linalg.qr(rng.normal(size=(k, k)))
    return q * np.sign(np.diag(r))


def toy_codes(kind: str = "identity", n: int = 2000, k: int = 4, seed: int = 0):
    """Return (codes (n, L), factors (n, k), factor_names) for one of TOY_CODES."""
    if kind not in TOY_CODES:
        raise ValueError(f"Unknown toy code {kind!r}; choose one of: {', '.join(TOY_CODES)}.")
    if not 2 <= k <= 32:
        raise ValueError(f"Use between 2 and 32 factors; got {k}.")
    if not 20 <= n <= 100_000:
        raise ValueError(f"Use between 20 and 100,000 samples; got {n}.")
    rng = np.random.default_rng(seed)
    z = rng.uniform(-1, 1, size=(n, k))
    # structure (rotations, mixing matrices) depends on the seed too, but on its own stream
    srng = np.random.default_rng(seed + 10_007)
    if kind == "identity":
        c = z.copy()
    elif kind == "rotation":
        c = z @ _orthogonal(k, srng)
    elif kind == "elementwise":
        fs = [lambda x: x**3, lambda x: np.exp(3 * x), lambda x: np.tanh(3 * x), lambda x: np.sinh(3 * x)]
        c = np.stack([fs[i % 4](z[:, i]) for i in range(k)], axis=1)
    elif kind == "mixing":
        c = np.tanh(2.5 * z @ _orthogonal(k, srng)) @ _orthogonal(k, srng)
    elif kind == "redundant":
        c = np.hstack([z, z + 0.01 * rng.normal(size=z.shape)])
    elif kind == "missing":
        c = np.hstack([z[:, :-1], rng.normal(size=(n, 1))])
    else:  # noise
        c = rng.normal(size=(n, k))
    return c, z, [f"z{j + 1}" for j in range(k)]


def _is_factor_column(name: str) -> bool:
    s = str(name).strip().lower()
    return s.startswith("factor") or s.startswith("z_") or (s[:1] == "z" and s[1:].isdigit())


def load_codes_file(data, filename: str = "codes.csv"):
    """Parse an uploaded CSV or NPZ of codes and factors.

    CSV: a header row; columns named `factor…`, `z_…` or `z<number>` are factors, all others codes.
    NPZ: arrays `codes` (N, L) and `factors` (N, K); optional `discrete` (K,) bool, `factor_names`,
    `code_names`. Returns (codes, factors, factor_names, code_names, discrete or None).
    """
    raw = as_bytes(data)
    check_size(raw, MAX_UPLOAD_BYTES, "codes")
    name = (filename or "").lower()
    if name.endswith(".npz") or raw[:2] == b"PK":
        return _load_npz(raw)
    if name.endswith(".csv") or name.endswith(".txt") or not name:
        return _load_csv(raw)
    raise ValueError(f"{filename!r} is neither a .csv nor a .npz file; upload one of those.")


def _load_npz(raw: bytes):
    try:
        z = np.load(io.BytesIO(raw), allow_pickle=False)
        keys = set(z.files)
    except Exception as e:  # zipfile/np raise several types for foreign or truncated files
        raise ValueError(f"The file could not be read as .npz ({type(e).__name__}); save it with np.savez.") from e
    missing = {"codes", "factors"} - keys
    if missing:
        raise ValueError(f"The .npz file needs arrays named 'codes' and 'factors'; missing {sorted(missing)} "
                         f"(found {sorted(keys) or 'none'}).")
    try:
        codes, factors = np.asarray(z["codes"], dtype=float), np.asarray(z["factors"], dtype=float)
        fn = [str(s) for s in z["factor_names"]] if "factor_names" in keys else None
        cn = [str(s) for s in z["code_names"]] if "code_names" in keys else None
        disc = np.asarray(z["discrete"], dtype=bool).reshape(-1) if "discrete" in keys else None
    except ValueError as e:
        raise ValueError(f"The .npz arrays must be numeric ({e}); object arrays are not accepted.") from e
    if codes.ndim == 1:
        codes = codes[:, None]
    if factors.ndim == 1:
        factors = factors[:, None]
    _check_shape(codes, factors)
    return codes, factors, fn, cn, disc


def _load_csv(raw: bytes):
    try:
        df = pd.read_csv(io.BytesIO(raw))
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as e:
        raise ValueError(f"The CSV file could not be parsed ({type(e).__name__}); save it as comma-separated "
                         "text with one header row.") from e
    if df.shape[1] > 2 * MAX_COLUMNS:
        raise ValueError(f"The CSV has {df.shape[1]} columns; the limit is {2 * MAX_COLUMNS}.")
    fcols = [c for c in df.columns if _is_factor_column(c)]
    ccols = [c for c in df.columns if c not in fcols]
    if not fcols:
        raise ValueError("No factor columns found: name them `factor…`, `z_…` or `z1, z2, …`; "
                         "all other columns are read as codes.")
    if not ccols:
        raise ValueError("No code columns found: every column looks like a factor. Name the code columns "
                         "e.g. `c1, c2, …`.")
    for c in df.columns:
        if not (pd.api.types.is_numeric_dtype(df[c]) or pd.api.types.is_bool_dtype(df[c])):
            raise ValueError(f"The column {c!r} is not numeric; encode it as numbers (e.g. class ids).")
    codes = df[ccols].to_numpy(dtype=float)
    factors = df[fcols].to_numpy(dtype=float)
    _check_shape(codes, factors)
    return codes, factors, [str(c) for c in fcols], [str(c) for c in ccols], None


def _check_shape(codes, factors) -> None:
    if codes.ndim != 2 or factors.ndim != 2:
        raise ValueError("codes and factors must be 2-D arrays (samples × dimensions).")
    if codes.shape[0] != factors.shape[0]:
        raise ValueError(f"The file has {codes.shape[0]} rows of codes but {factors.shape[0]} rows of factors; "
                         "each row must be the same sample in both.")
    if codes.shape[0] > MAX_ROWS:
        raise ValueError(f"The file has {codes.shape[0]:,} samples; the limit is {MAX_ROWS:,}. Subsample it first.")
    if codes.shape[1] > MAX_COLUMNS or factors.shape[1] > MAX_COLUMNS:
        raise ValueError(f"At most {MAX_COLUMNS} code dimensions and {MAX_COLUMNS} factors are supported.")


def to_csv_bytes(codes, factors, factor_names=None) -> bytes:
    """A CSV in the upload format (codes c1…, factors z1…): used for the page's example download."""
    codes, factors = np.asarray(codes), np.asarray(factors)
    fn = factor_names or [f"z{j + 1}" for j in range(factors.shape[1])]
    df = pd.DataFrame(codes, columns=[f"c{i + 1}" for i in range(codes.shape[1])])
    for j, n in enumerate(fn):
        df[n if _is_factor_column(n) else f"factor_{n}"] = factors[:, j]
    return df.to_csv(index=False, float_format="%.6g").encode()
