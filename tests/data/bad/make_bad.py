"""Writes the bad-input corpus: small files that each upload path must refuse with a clear message (or, for the
`ok_` files, accept). Run `python tests/data/bad/make_bad.py` to (re)write them beside this script.

`CASES` maps each file to its upload path ("image", "video", "h5ad", "codes") and a fragment of the expected
message (None: the file is accepted). The decompression bombs are not stored: `BOMBS` builds them at test time
(each is a few KB to a few MB on disk and would decode to hundreds of MB or more).
"""

from __future__ import annotations

import io
import os
import sys
import zipfile
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent

# file name -> (upload path, fragment of the expected message or None when the file is accepted)
CASES = {
    "empty.png": ("image", "empty"),
    "truncated.png": ("image", "could not be read as an image"),
    "text.png": ("image", "could not be read as an image"),
    "one_pixel.png": ("image", "at least 2 pixels"),
    "empty.mp4": ("video", "empty"),
    "random_bytes.mp4": ("video", "video"),
    "one_frame.gif": ("video", "at least 2"),
    "short.gif@start=10": ("video", "ends before the chosen first frame"),
    "empty.h5ad": ("h5ad", "empty"),
    "text.h5ad": ("h5ad", "no HDF5 signature"),
    "truncated.h5ad": ("h5ad", "truncated"),
    "lognorm.h5ad": ("h5ad", "non-integer"),
    "negative.h5ad": ("h5ad", "negative"),
    "nan.h5ad": ("h5ad", "NaN"),
    "complex.h5ad": ("h5ad", "complex"),
    "no_attribute.h5ad": ("h5ad", "No obs column"),
    "ok_12_cells.h5ad": ("h5ad", None),
    "empty.csv": ("codes", "empty"),
    "header_only.csv": ("codes", "no data rows"),
    "text_column.csv": ("codes", "not numeric"),
    "nan.csv": ("codes", "NaN"),
    "constant_factor.csv": ("codes", "constant"),
    "pickled.npz": ("codes", "objects"),
    "complex.npz": ("codes", "complex"),
    "missing_arrays.npz": ("codes", "needs arrays named"),
    "text.npz": ("codes", "could not be read as .npz"),
    "truncated.npz": ("codes", "could not be read as .npz"),
}


def split_case(name: str) -> tuple[str, int]:
    """('short.gif', 10) for 'short.gif@start=10'; (name, 0) otherwise."""
    file, _, opt = name.partition("@start=")
    return file, int(opt or 0)


def _png(arr) -> bytes:
    from PIL import Image

    b = io.BytesIO()
    Image.fromarray(arr).save(b, format="PNG")
    return b.getvalue()


def _gif(n_frames: int, side: int = 32) -> bytes:
    from PIL import Image

    frames = [Image.fromarray(np.full((side, side, 3), 40 * i, np.uint8)) for i in range(n_frames)]
    b = io.BytesIO()
    frames[0].save(b, format="GIF", save_all=True, append_images=frames[1:], duration=100)
    return b.getvalue()


def _adata(x, types=None):
    import anndata as ad
    import pandas as pd

    n, g = x.shape
    types = types if types is not None else np.array(["a", "b"] * (n // 2) + ["a"] * (n % 2))
    return ad.AnnData(X=x, obs=pd.DataFrame({"cell_type": types}, index=[f"c{i}" for i in range(n)]),
                      var=pd.DataFrame(index=[f"g{j}" for j in range(g)]))


def _h5ad(adata) -> bytes:
    import tempfile

    fd, path = tempfile.mkstemp(suffix=".h5ad")
    os.close(fd)
    try:
        adata.write_h5ad(path)
        return Path(path).read_bytes()
    finally:
        os.unlink(path)


def _counts(n=12, g=30, seed=0):
    return np.random.default_rng(seed).poisson(2.0, size=(n, g)).astype(np.float32)


def _complex_h5ad() -> bytes:
    import tempfile

    import h5py

    fd, path = tempfile.mkstemp(suffix=".h5ad")
    os.close(fd)
    try:
        _adata(_counts()).write_h5ad(path)
        with h5py.File(path, "r+") as f:
            attrs = dict(f["X"].attrs)
            del f["X"]
            f.create_dataset("X", data=_counts().astype(np.complex64))
            f["X"].attrs.update(attrs)
        return Path(path).read_bytes()
    finally:
        os.unlink(path)


def _npz(**arrays) -> bytes:
    b = io.BytesIO()
    np.savez(b, **arrays)
    return b.getvalue()


def corpus() -> dict[str, bytes]:
    """{file name: bytes} of every stored case."""
    rng = np.random.default_rng(0)
    png = _png(rng.integers(0, 255, (32, 32, 3), dtype=np.uint8))
    x = _counts()
    ok = _h5ad(_adata(x))
    codes, factors = rng.normal(size=(100, 3)), rng.uniform(size=(100, 2))
    good_npz = _npz(codes=codes, factors=factors)
    return {
        "empty.png": b"",
        "truncated.png": png[: len(png) // 2],
        "text.png": b"this is a text file with a .png name\n",
        "one_pixel.png": _png(np.zeros((1, 1, 3), np.uint8)),
        "empty.mp4": b"",
        "random_bytes.mp4": rng.integers(0, 255, 4096, dtype=np.uint8).tobytes(),
        "one_frame.gif": _gif(1),
        "short.gif": _gif(4),
        "empty.h5ad": b"",
        "text.h5ad": b"cell,gene,count\n1,2,3\n",
        "truncated.h5ad": ok[: len(ok) // 2],
        "lognorm.h5ad": _h5ad(_adata(np.log1p(x))),
        "negative.h5ad": _h5ad(_adata(x - 3)),
        "nan.h5ad": _h5ad(_adata(np.where(x > 3, np.nan, x).astype(np.float32))),
        "complex.h5ad": _complex_h5ad(),
        "no_attribute.h5ad": _h5ad(_adata(x, types=np.array([f"t{i}" for i in range(12)]))),
        "ok_12_cells.h5ad": ok,
        "empty.csv": b"",
        "header_only.csv": b"c1,c2,z1,z2\n",
        "text_column.csv": b"c1,c2,z1\n0.1,red,1\n0.2,blue,2\n",
        "nan.csv": b"c1,c2,z1\n" + b"".join(f"{i / 10},{'nan' if i == 5 else i},{i % 3}\n".encode() for i in range(30)),
        "constant_factor.csv": b"c1,c2,z1,z2\n" + b"".join(f"{i},{-i},{i % 4},7\n".encode() for i in range(30)),
        "pickled.npz": _pickled_npz(),
        "complex.npz": _npz(codes=codes.astype(np.complex128), factors=factors),
        "missing_arrays.npz": _npz(x=codes, y=factors),
        "text.npz": b"codes and factors, but as prose\n",
        "truncated.npz": good_npz[: len(good_npz) // 2],
    }


def _pickled_npz() -> bytes:
    b = io.BytesIO()
    np.savez(b, codes=np.array([{"a": 1}, None], dtype=object), factors=np.zeros((2, 1)))
    return b.getvalue()


# ---------------------------------------------------------------------------------------------------------------
# Decompression bombs, built at test time into `folder`: (file name, upload path, fragment of the expected message)


def bomb_h5ad_dense(folder: Path) -> Path:
    """50,000 cells x 2,000 genes stored dense (float32, all ones): ~400 MB decoded from a file of a few hundred KB."""
    import h5py

    path = folder / "bomb_dense.h5ad"
    n, g = 50_000, 2_000
    _adata(_sparse_zeros(n, g)).write_h5ad(path)
    with h5py.File(path, "r+") as f:
        del f["X"]
        d = f.create_dataset("X", shape=(n, g), dtype=np.float32, chunks=(1000, g), compression="gzip",
                             fillvalue=1.0)
        d.attrs.update({"encoding-type": "array", "encoding-version": "0.2.0"})
    return path


def bomb_h5ad_sparse(folder: Path) -> Path:
    """A CSR matrix of 30 million stored ones (over the value cap; ~240 MB decoded) in a small file."""
    import h5py

    path = folder / "bomb_sparse.h5ad"
    n, g, nnz = 30_000, 2_000, 30_000_000
    _adata(_sparse_zeros(n, g)).write_h5ad(path)
    with h5py.File(path, "r+") as f:
        x = f["X"]
        for name, dtype, fill in (("data", np.float32, 1.0), ("indices", np.int32, 0)):
            del x[name]
            x.create_dataset(name, shape=(nnz,), dtype=dtype, chunks=(1_000_000,), compression="gzip", fillvalue=fill)
        del x["indptr"]
        x.create_dataset("indptr", data=np.arange(n + 1, dtype=np.int64) * (nnz // n), compression="gzip")
    return path


def _sparse_zeros(n, g):
    import scipy.sparse as sp

    return sp.csr_matrix((n, g), dtype=np.float32)


def bomb_npz(folder: Path) -> Path:
    """codes (120,000 x 400) float64 of zeros: ~384 MB decoded from a zip of ~400 KB (written in chunks)."""
    path = folder / "bomb.npz"
    shape, chunk = (120_000, 400), np.zeros((1_000, 400))
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        with zf.open("codes.npy", "w", force_zip64=True) as fh:
            np.lib.format.write_array_header_1_0(fh, {"descr": "<f8", "fortran_order": False, "shape": shape})
            for _ in range(shape[0] // 1_000):
                fh.write(chunk.tobytes())
        zf.writestr("factors.npy", _npy(np.zeros((shape[0], 2))))
    return path


def _npy(a) -> bytes:
    b = io.BytesIO()
    np.save(b, a)
    return b.getvalue()


def bomb_png(folder: Path) -> Path:
    """A 6,000 x 6,000 1-bit PNG: 4 KB on disk, 36 megapixels decoded."""
    from PIL import Image

    path = folder / "bomb.png"
    Image.new("1", (6000, 6000)).save(path, format="PNG")
    return path


def bomb_gif(folder: Path) -> Path:
    """A 2-frame 5,000 x 5,000 GIF: ~40 KB on disk, 25 megapixels per frame."""
    from PIL import Image

    path = folder / "bomb.gif"
    frames = [Image.new("P", (5000, 5000), i) for i in range(2)]
    frames[0].save(path, format="GIF", save_all=True, append_images=frames[1:])
    return path


BOMBS = {  # builder -> (upload path, fragment of the expected message)
    bomb_h5ad_dense: ("h5ad", "the limit is 320 MB"),
    bomb_h5ad_sparse: ("h5ad", "the limit is 25,000,000"),
    bomb_npz: ("codes", "the limit is 128 MB"),
    bomb_png: ("image", "the limit is 16 megapixels"),
    bomb_gif: ("video", "megapixels per frame"),
}


def main(folder: Path = HERE) -> None:
    for name, data in corpus().items():
        (folder / name).write_bytes(data)
    print(f"wrote {len(CASES)} bad-input files to {folder}")


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else HERE)
