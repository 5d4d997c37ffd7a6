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


MAX_DECODED_BYTES = 128 * 1024 * 1024  # all arrays of an .npz together, decoded (read from the headers first)
NAME_ARRAYS = ("factor_names", "code_names")


def npz_headers(raw: bytes) -> dict:
    """{array name: (shape, dtype)} of an .npz from each member's .npy header, decoding no data.
    ValueError for a file that is no zip of .npy arrays, or an array that is complex, object or over budget."""
    import zipfile

    out = {}
    try:
        with zipfile.ZipFile(io.BytesIO(raw)) as zf:
            for info in zf.infolist():
                if not info.filename.endswith(".npy"):
                    continue
                with zf.open(info) as fh:
                    version = np.lib.format.read_magic(fh)
                    read = np.lib.format.read_array_header_1_0 if version == (1, 0) else \
                        np.lib.format.read_array_header_2_0
                    shape, _, dtype = read(fh)
                out[info.filename[:-4]] = (tuple(shape), dtype)
    except ValueError as e:
        if "object" in str(e).lower() or "pickle" in str(e).lower():
            raise ValueError("The .npz holds object (pickled) arrays, which are not accepted; save numeric arrays "
                             "with np.savez.") from e
        raise ValueError("The file could not be read as .npz: save it with np.savez.") from e
    except (zipfile.BadZipFile, OSError, EOFError, KeyError) as e:
        raise ValueError("The file could not be read as .npz: it is not a zip of .npy arrays, or it is truncated. "
                         "Save it with np.savez.") from e
    total = 0
    for name, (shape, dtype) in out.items():
        if dtype.kind == "O" or dtype.hasobject:
            raise ValueError(f"The .npz array {name!r} holds Python objects, which are not accepted; save numeric "
                             "arrays (and names as strings) with np.savez.")
        if dtype.kind == "c":
            raise ValueError(f"The .npz array {name!r} holds complex numbers; codes and factors must be real.")
        if dtype.kind in "US" and name not in NAME_ARRAYS:
            raise ValueError(f"The .npz array {name!r} holds text; codes and factors must be numeric.")
        if dtype.kind not in "biufUS":
            raise ValueError(f"The .npz array {name!r} has the unsupported type {dtype}; use numbers.")
        total += int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    for name in ("codes", "factors"):
        shape = out.get(name, ((),))[0]
        if len(shape) >= 1 and shape[0] > MAX_ROWS:
            raise ValueError(f"The .npz array {name!r} has {shape[0]:,} rows; the limit is {MAX_ROWS:,} samples. "
                             "Subsample it first.")
        if len(shape) >= 2 and int(np.prod(shape[1:])) > MAX_COLUMNS:
            raise ValueError(f"The .npz array {name!r} has {int(np.prod(shape[1:])):,} columns; the limit is "
                             f"{MAX_COLUMNS}.")
    if total > MAX_DECODED_BYTES:
        raise ValueError(f"Decoded, the .npz arrays would take {total / 2**20:,.0f} MB; the limit is "
                         f"{MAX_DECODED_BYTES / 2**20:,.0f} MB.")
    return out


def _load_npz(raw: bytes):
    headers = npz_headers(raw)
    missing = {"codes", "factors"} - set(headers)
    if missing:
        raise ValueError(f"The .npz file needs arrays named 'codes' and 'factors'; missing {sorted(missing)} "
                         f"(found {sorted(headers) or 'none'}).")
    try:
        z = np.load(io.BytesIO(raw), allow_pickle=False)
        keys = set(z.files)
        codes, factors = np.asarray(z["codes"], dtype=float), np.asarray(z["factors"], dtype=float)
        fn = [str(s) for s in np.asarray(z["factor_names"]).reshape(-1)] if "factor_names" in keys else None
        cn = [str(s) for s in np.asarray(z["code_names"]).reshape(-1)] if "code_names" in keys else None
        disc = np.asarray(z["discrete"], dtype=bool).reshape(-1) if "discrete" in keys else None
    except ValueError as e:
        raise ValueError("The .npz arrays could not be read as numbers; save numeric arrays with np.savez.") from e
    except Exception as e:  # zipfile/np raise several types for truncated members
        raise ValueError("The file could not be read as .npz: it is truncated. Save it with np.savez.") from e
    if codes.ndim == 1:
        codes = codes[:, None]
    if factors.ndim == 1:
        factors = factors[:, None]
    _check_shape(codes, factors)
    _check_values(codes, factors, fn, cn)
    return codes, factors, fn, cn, disc


def _load_csv(raw: bytes):
    n_cols = raw[:raw.find(b"\n") if b"\n" in raw else len(raw)].count(b",") + 1
    if n_cols > 2 * MAX_COLUMNS:  # from the header line, before parsing
        raise ValueError(f"The CSV has {n_cols} columns; the limit is {2 * MAX_COLUMNS}.")
    why = {pd.errors.EmptyDataError: "it holds no text", UnicodeDecodeError: "it is not UTF-8 text",
           pd.errors.ParserError: "its rows have different numbers of fields"}
    try:  # at most MAX_ROWS + 1 rows are parsed, whatever the file holds
        df = pd.read_csv(io.BytesIO(raw), nrows=MAX_ROWS + 1)
    except tuple(why) as e:
        reason = next(text for kind, text in why.items() if isinstance(e, kind))
        raise ValueError(f"The CSV file could not be parsed: {reason}; save it as comma-separated text with one "
                         "header row.") from e
    if df.shape[0] > MAX_ROWS:
        raise ValueError(f"The CSV has more than {MAX_ROWS:,} rows; the limit is {MAX_ROWS:,} samples. "
                         "Subsample it first.")
    if df.shape[0] == 0:
        raise ValueError("The CSV has a header row but no data rows; add one row per sample below the header.")
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
    _check_values(codes, factors, [str(c) for c in fcols], [str(c) for c in ccols])
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


def _check_values(codes, factors, factor_names=None, code_names=None) -> None:
    """Refuse NaN/infinite values and constant factors at upload time, so the page can say so at once."""
    for what, a, names in (("codes", codes, code_names), ("factors", factors, factor_names)):
        bad = ~np.isfinite(a)
        if bad.any():
            r, c = np.argwhere(bad)[0]
            col = names[c] if names and c < len(names) else f"column {c + 1}"
            raise ValueError(f"The {what} contain {int(bad.sum())} NaN or infinite value(s), first in row {r + 1} "
                             f"({col}); remove or impute those rows.")
    for j in range(factors.shape[1]):
        if len(factors) and np.all(factors[:, j] == factors[0, j]):
            name = factor_names[j] if factor_names and j < len(factor_names) else f"factor {j + 1}"
            raise ValueError(f"The factor {name!r} is constant ({factors[0, j]:g}); nothing can predict its variation, "
                             "so drop it.")


def to_csv_bytes(codes, factors, factor_names=None) -> bytes:
    """A CSV in the upload format (codes c1…, factors z1…): used for the page's example download."""
    codes, factors = np.asarray(codes), np.asarray(factors)
    fn = factor_names or [f"z{j + 1}" for j in range(factors.shape[1])]
    df = pd.DataFrame(codes, columns=[f"c{i + 1}" for i in range(codes.shape[1])])
    for j, n in enumerate(fn):
        df[n if _is_factor_column(n) else f"factor_{n}"] = factors[:, j]
    return df.to_csv(index=False, float_format="%.6g").encode()
