"""Score several representations with DCI-ES and compare them: the Disentanglement page's one request.

`compare(sources, probe, n, k, seed, upload=..., store=...)` scores each chosen source (toy codes, the other
pages' learned codes, an uploaded file) once per setting, keeps the results in a bounded, thread-safe
`ResultStore`, and returns a `Comparison` holding every table and download the page draws.
"""

from __future__ import annotations

import hashlib
import threading
from collections import OrderedDict
from dataclasses import dataclass, field

import pandas as pd

from backend.core.progress import as_progress
from backend.disentangle.data import load_codes_file
from backend.disentangle.dci import DCIResult, dci_es, factors_frame, scores_csv, scores_frame
from backend.disentangle.sources import available_sources, load_source

UPLOAD = "upload"


@dataclass
class Upload:
    """An uploaded file of codes and factors, parsed; `digest` identifies its bytes."""

    digest: str
    name: str
    codes: object
    factors: object
    factor_names: list | None
    code_names: list | None
    discrete: object


def read_upload(raw: bytes, filename: str) -> Upload:
    """Parse an uploaded CSV or NPZ (ValueError says what to fix)."""
    codes, factors, fnames, cnames, disc = load_codes_file(raw, filename)
    return Upload(hashlib.sha1(raw).hexdigest()[:16], f"Uploaded: {filename}", codes, factors, fnames, cnames, disc)


class ResultStore:
    """Scored representations keyed by (source, probe, n, k, seed); bounded, thread-safe."""

    def __init__(self, size: int = 64):
        self.size, self._items, self._lock = size, OrderedDict(), threading.Lock()

    def get(self, key):
        with self._lock:
            return self._items.get(key)

    def put(self, key, value) -> None:
        with self._lock:
            self._items[key] = value
            self._items.move_to_end(key)
            while len(self._items) > self.size:
                self._items.popitem(last=False)


@dataclass
class Scored:
    name: str
    result: DCIResult
    note: str


@dataclass
class Comparison:
    """The scored representations (name -> result, note, source key), what is still to compute, and errors."""

    results: dict = field(default_factory=dict)
    notes: dict = field(default_factory=dict)
    sources: dict = field(default_factory=dict)  # name -> source key
    pending: list = field(default_factory=list)  # source keys not scored yet
    errors: list = field(default_factory=list)   # "label: message" of sources that could not be scored

    @property
    def scores(self) -> pd.DataFrame:
        """One row per representation: D, C, I, E, S and the variants."""
        return scores_frame(self.results)

    @property
    def factors(self) -> pd.DataFrame:
        return factors_frame(self.results)

    def bars(self) -> pd.DataFrame:
        """D, C, I, E, S in long form (representation, score, value) for a grouped bar chart."""
        return self.scores.melt(id_vars="representation", value_vars=["D", "C", "I", "E", "S"], var_name="score")

    def csv(self) -> bytes:
        return scores_csv(self.results)

    def factors_csv(self) -> bytes:
        return self.factors.to_csv(index=False).encode()


def source_key(src: str, probe: str, n: int, k: int, seed: int, upload: Upload | None = None) -> tuple:
    if src == UPLOAD:
        return (UPLOAD, upload.digest if upload else None, probe, seed)
    return (src, probe, n, k if src.startswith("toy:") else 0, seed)


def score_source(src: str, probe: str, n: int, k: int, seed: int, upload: Upload | None = None,
                 progress=None) -> Scored:
    """DCI-ES of one source: an uploaded file, or a representation from `available_sources()`."""
    if src == UPLOAD:
        if upload is None:
            raise ValueError("No file is uploaded; upload a CSV or NPZ of codes and factors first.")
        res = dci_es(upload.codes, upload.factors, discrete=upload.discrete, probe=probe, seed=seed,
                     progress=progress, factor_names=upload.factor_names, code_names=upload.code_names)
        # the store is shared by all sessions and keyed by content: it holds no file name (see `compare`)
        return Scored(UPLOAD, res, "your uploaded file")
    rep = load_source(src, n=n, k=k, seed=seed)
    res = dci_es(rep.codes, rep.factors, discrete=rep.discrete, probe=probe, seed=seed, progress=progress,
                 factor_names=rep.factor_names)
    return Scored(rep.name, res, rep.note)


def compare(sources: list, probe: str = "rf", n: int = 2000, k: int = 4, seed: int = 0,
            upload: Upload | None = None, progress=None, store: ResultStore | None = None,
            compute: bool = True) -> Comparison:
    """Score every source not yet in `store` (unless `compute` is False), then gather the comparison.
    A source that cannot be scored is reported in `errors`; `Cancelled` from `progress` stops the scoring
    (what was scored stays in the store)."""
    store = store if store is not None else ResultStore()
    keys = {src: source_key(src, probe, n, k, seed, upload) for src in sources}
    todo = [src for src in sources if store.get(keys[src]) is None]
    errors = []
    if compute and todo:
        labels = {**available_sources(), UPLOAD: upload.name if upload else UPLOAD}
        p = as_progress(progress)
        for i, src in enumerate(todo):
            label = labels.get(src, src)

            def sub(step, total, msg, i=i, label=label):
                p.update(i * 100 + int(100 * step / max(total, 1)), len(todo) * 100, f"{label}: {msg}")

            try:
                store.put(keys[src], score_source(src, probe, n, k, seed, upload, sub))
            except ValueError as e:
                errors.append(f"{label}: {e}")
    out = Comparison(errors=errors)
    for src in sources:
        got = store.get(keys[src])
        if got is None:
            out.pending.append(src)
            continue
        name = upload.name if src == UPLOAD and upload is not None else got.name  # this session's own file name
        out.results[name], out.notes[name], out.sources[name] = got.result, got.note, src
    return out


def example_csv() -> bytes:
    """An upload-format CSV of the rotated toy code (500 rows, 4 factors): the page's example download."""
    from backend.disentangle.data import to_csv_bytes, toy_codes

    codes, factors, _ = toy_codes("rotation", n=500, seed=0)
    return to_csv_bytes(codes, factors)
