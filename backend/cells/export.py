"""What a user takes away from the Cells page: cells as .h5ad bytes, tables as CSV bytes."""

from __future__ import annotations

import io
import os
import tempfile

import pandas as pd


def h5ad_bytes(adata) -> bytes:
    """The AnnData as .h5ad file bytes (object columns written as strings)."""
    a = adata.copy()
    for c in a.obs.columns:
        if a.obs[c].dtype == object:
            a.obs[c] = a.obs[c].astype(str)
    fd, path = tempfile.mkstemp(suffix=".h5ad")
    os.close(fd)
    try:
        a.write_h5ad(path)
        with open(path, "rb") as f:
            return f.read()
    finally:
        os.unlink(path)


def csv_bytes(df: pd.DataFrame) -> bytes:
    buf = io.StringIO()
    df.to_csv(buf, index=False)
    return buf.getvalue().encode()
