"""The bad-input corpus (tests/data/bad, written by make_bad.py) through every upload path, and the
decompression bombs (built at test time) refused from their headers with little memory growth."""

from __future__ import annotations

import json
import re
import subprocess
import sys

import numpy as np
import pytest

from tests.conftest import ROOT
from tests.data.bad.make_bad import BOMBS, CASES, corpus, split_case

BAD = ROOT / "tests" / "data" / "bad"
INTERNALS = re.compile(r"0x[0-9a-fA-F]{4,}|<_io|h5py|Traceback|\b[A-Z][A-Za-z]*(Error|Exception)\b|\bErrno\b")


def _image_paths(raw):
    from backend.apt.comparison import Digit
    from backend.core.uploads import load_image
    from backend.slots.api import segment_upload

    return [lambda: load_image(raw), lambda: Digit.uploaded(raw), lambda: segment_upload(raw, "sprites")]


def upload_paths(kind: str, raw: bytes, name: str, start: int = 0) -> list:
    """Every function a page calls on an upload of this kind (each a zero-argument callable)."""
    if kind == "image":
        return _image_paths(raw)
    if kind == "video":
        from backend.video.clips import clip_from_upload

        return [lambda: clip_from_upload(raw, start=start, num_frames=8, resolution=32)]
    if kind == "h5ad":
        from backend.cells import read_h5ad_counts

        return [lambda: read_h5ad_counts(raw)]
    from backend.disentangle import read_upload

    return [lambda: read_upload(raw, name)]


def test_stored_corpus_is_what_the_script_writes():
    stored = {p.name for p in BAD.iterdir() if p.suffix not in (".py",) and p.name != "__pycache__"}
    assert stored == {split_case(c)[0] for c in CASES}
    made = corpus()
    for name in stored:
        if not name.endswith(".h5ad"):  # HDF5 files carry write times; the rest are byte-identical
            assert (BAD / name).read_bytes() == made[name], name
        assert len(made[name]) < 64_000  # small files only


@pytest.mark.parametrize("case", sorted(CASES))
def test_every_upload_path_refuses_in_words(case):
    kind, fragment = CASES[case]
    name, start = split_case(case)
    raw = (BAD / name).read_bytes()
    for call in upload_paths(kind, raw, name, start):
        if fragment is None:
            call()
            continue
        with pytest.raises(ValueError) as e:
            call()
        msg = str(e.value)
        assert fragment.lower() in msg.lower(), msg
        assert not INTERNALS.search(msg), msg
        assert len(msg) < 400


def test_a_12_cell_upload_trains_on_all_cells_and_says_metrics_are_unavailable():
    from backend.cells import CellsRequest, checkpoint_report, explore, fit, read_h5ad_counts

    adata, cols = read_h5ad_counts((BAD / "ok_12_cells.h5ad").read_bytes())
    model = fit(adata, condition_keys=cols[:1], max_seconds=3, seed=0)
    assert model.n_heldout == 0 and model.train_info["n_train"] == 12
    assert "Metrics are unavailable" in checkpoint_report(model, model.real_data).summary
    view = explore(model, model.real_data, CellsRequest((), (), 20, 0, 4, "euler", "knn"))
    assert view.generated.n_obs == 20
    assert view.comparison is None and view.counts is None
    assert "Metrics are unavailable" in view.comparison_error
    digest = model.digest
    assert len(digest) == 16 and digest == model.digest
    other = fit(adata, condition_keys=cols[:1], max_seconds=3, seed=1)
    assert other.digest != digest  # a content hash, not id(): a different model never shares a key


def test_count_matrix_is_float32_csr_and_checks_in_chunks(monkeypatch):
    import scipy.sparse as sp

    from backend.cells import data as cdata
    from tests.data.bad.make_bad import _adata

    monkeypatch.setattr(cdata, "COUNT_CHUNK", 7)  # many chunks; the bad value sits in the last one
    x = np.random.default_rng(0).poisson(2.0, size=(12, 30)).astype(np.float64)
    got = cdata.count_matrix(_adata(x))
    assert sp.isspmatrix_csr(got) and got.dtype == np.float32 and np.array_equal(got.toarray(), x)
    x[-1, -1] = 0.5
    with pytest.raises(ValueError, match="non-integer"):
        cdata.count_matrix(_adata(x))
    with pytest.raises(ValueError, match="complex"):
        cdata.count_matrix(_adata(x.astype(np.complex64)))


def test_disentanglement_results_hold_no_file_name():
    """Two sessions upload the same bytes under different names: each sees its own name; the shared store
    (keyed by content) holds neither."""
    from backend.disentangle import UPLOAD, ResultStore, compare, example_csv, read_upload

    store, raw = ResultStore(), example_csv()
    first = compare([UPLOAD], n=500, upload=read_upload(raw, "alice_secret.csv"), store=store)
    second = compare([UPLOAD], n=500, upload=read_upload(raw, "bob.csv"), store=store)
    assert list(first.results) == ["Uploaded: alice_secret.csv"]
    assert list(second.results) == ["Uploaded: bob.csv"]
    assert "alice" not in repr(store._items) and "bob" not in repr(store._items)


def test_video_start_past_the_end_says_so():
    from backend.video.clips import clip_from_upload

    raw = (BAD / "short.gif").read_bytes()
    with pytest.raises(ValueError, match="has 4 frames"):
        clip_from_upload(raw, start=10, num_frames=8, resolution=32)
    assert clip_from_upload(raw, start=1, num_frames=3, resolution=32)[0].shape[0] == 3


_MEASURE = r"""
import json, resource, sys, threading, time
sys.path.insert(0, sys.argv[3])
from tests.unit.test_bad_inputs import upload_paths
raw = open(sys.argv[2], "rb").read()
calls = upload_paths(sys.argv[1], raw, sys.argv[2])
def rss():
    return int(open("/proc/self/statm").read().split()[1]) * 4096
peak, stop = [0], []
def poll():
    while not stop:
        peak[0] = max(peak[0], rss())
        time.sleep(0.002)
msg = None
try:  # warm-up: the first call imports whatever the path needs
    calls[0]()
except ValueError as e:
    msg = str(e)
before, max_before = rss(), resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
t = threading.Thread(target=poll); t.start()
for call in calls:
    try:
        call()
    except ValueError as e:
        msg = str(e)
stop.append(1); t.join()
max_after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
print(json.dumps({"growth": max(peak[0] - before, max_after - max_before), "message": msg}))
"""

MAX_GROWTH = 64 * 2**20  # RSS a refused bomb may add (the caps keep an accepted upload under them, see uploads.py)


@pytest.mark.parametrize("build", list(BOMBS), ids=[b.__name__ for b in BOMBS])
def test_bombs_are_refused_from_headers_with_little_memory(build, tmp_path):
    kind, fragment = BOMBS[build]
    path = build(tmp_path)
    assert path.stat().st_size < 4_000_000  # small on disk ...
    out = subprocess.run([sys.executable, "-c", _MEASURE, kind, str(path), str(ROOT)], capture_output=True,
                         text=True, timeout=300, env={"OMP_NUM_THREADS": "1", "PATH": "/usr/bin:/bin"})
    assert out.returncode == 0, out.stderr[-2000:]
    got = json.loads(out.stdout.strip().splitlines()[-1])
    assert got["message"] and fragment in got["message"], got  # ... refused, naming the cap ...
    assert not INTERNALS.search(got["message"]), got
    assert got["growth"] < MAX_GROWTH, f"RSS grew {got['growth'] / 2**20:.0f} MB"  # ... without decoding it
