"""DCI-ES backend: formulas on hand-made inputs, checks of meaning on toy codes, bad input, uploads, sources."""

from __future__ import annotations

import io

import numpy as np
import pandas as pd
import pytest

from backend.core.progress import Cancelled
from backend.disentangle import (
    UPLOAD,
    ResultStore,
    available_sources,
    compare,
    completeness,
    completeness_per_factor,
    dci_es,
    disentanglement,
    disentanglement_per_code,
    explicitness,
    infer_discrete,
    load_codes_file,
    load_source,
    read_upload,
    scores_csv,
    size,
    to_csv_bytes,
    toy_codes,
)

# ------------------------------------------------------------------------------------------- formulas


def test_diagonal_and_uniform_importance():
    assert disentanglement(np.eye(4)) == pytest.approx(1.0, abs=1e-6)
    assert completeness(np.eye(4)) == pytest.approx(1.0, abs=1e-6)
    perm = np.eye(3)[[2, 0, 1]] * [[1.0], [5.0], [0.2]]  # permuted, unequal scales: still one code per factor
    assert disentanglement(perm) == pytest.approx(1.0, abs=1e-6)
    assert completeness(perm) == pytest.approx(1.0, abs=1e-6)
    assert disentanglement(np.ones((4, 4))) == pytest.approx(0.0, abs=1e-6)
    assert completeness(np.ones((4, 4))) == pytest.approx(0.0, abs=1e-6)


def test_hand_computed_entropies():
    # one code splits evenly over 2 of 4 factors: D_i = 1 - log_4(2) = 0.5
    R = np.array([[1.0, 1.0, 0.0, 0.0], [0.0, 0.0, 2.0, 0.0], [0.0, 0.0, 0.0, 2.0]])
    assert disentanglement_per_code(R) == pytest.approx([0.5, 1.0, 1.0], abs=1e-6)
    # weights rho = [2, 2, 2] / 6 -> D = (0.5 + 1 + 1) / 3
    assert disentanglement(R) == pytest.approx(2.5 / 3, abs=1e-6)
    # factor z1 only from code 1, factor z3 only from code 2: C_j = 1 for all used factors
    assert completeness_per_factor(R)[[0, 1, 2, 3]] == pytest.approx([1, 1, 1, 1], abs=1e-6)
    # two codes share one factor equally: C_j = 1 - log_2(2) = 0 (L = 2)
    assert completeness_per_factor(np.array([[1.0, 0.0], [1.0, 1.0]]))[0] == pytest.approx(0.0, abs=1e-6)
    # unused code rows weigh nothing
    assert disentanglement(np.vstack([np.eye(3), np.zeros((2, 3))])) == pytest.approx(1.0, abs=1e-6)


def test_completeness_weighted_vs_mean():
    R = np.array([[4.0, 1.0], [0.0, 1.0]])  # factor 1 perfectly complete and heavy, factor 2 fully shared
    c = completeness_per_factor(R)
    assert c == pytest.approx([1.0, 0.0], abs=1e-6)
    assert completeness(R, weighted=False) == pytest.approx(0.5, abs=1e-6)
    assert completeness(R) == pytest.approx(4 / 6, abs=1e-6)


def test_single_code_or_factor_edge_cases():
    assert disentanglement(np.array([[0.3], [0.7]])) == pytest.approx(1.0)  # K = 1
    assert completeness(np.array([[0.3, 0.7]])) == pytest.approx(1.0)      # L = 1
    assert disentanglement(np.zeros((3, 3))) == 0.0


def test_explicitness_hand_computed():
    assert explicitness([0, 1, 2], [1.0, 0.2, 0.1], baseline=1.0) == pytest.approx(0.45)
    assert explicitness([0, 1, 2], [0.65, 0.65, 0.65]) == pytest.approx(1.0)
    assert explicitness([0, 1, 2], [0.65, 0.65, 0.65], lstar=0.0) == pytest.approx(-0.3)
    # the running minimum: a later worse loss does not count
    assert explicitness([0, 1, 2], [1.0, 0.2, 0.9]) == pytest.approx(explicitness([0, 1, 2], [1.0, 0.2, 0.2]))
    # stays at the baseline until the last capacity: E -> -1 for a fine grid
    x = np.linspace(0, 1, 101)
    assert explicitness(x, np.r_[np.ones(100), 0.0]) == pytest.approx(-0.99, abs=1e-6)
    # a K-class baseline (K-1)/K rescales the normaliser
    assert explicitness([0, 1], [0.75, 0.0], baseline=0.75) == pytest.approx(0.0)
    with pytest.raises(ValueError, match="at least 2"):
        explicitness([1], [0.5])
    with pytest.raises(ValueError, match="increasing"):
        explicitness([0, 2, 1], [1, 0.5, 0.2])


def test_size():
    assert size(4, 4) == 1.0
    assert size(8, 4) == 0.5


# ---------------------------------------------------------------------------------- checks of meaning


@pytest.fixture(scope="module")
def rf_scores():
    out = {}
    for kind in ("identity", "rotation", "missing", "noise", "redundant"):
        c, z, names = toy_codes(kind, n=1000, k=3, seed=0)
        out[kind] = dci_es(c, z, probe="rf", seed=0, factor_names=names)
    return out


def test_identity_is_ideal(rf_scores):
    r = rf_scores["identity"]
    assert r.D > 0.95 and r.C > 0.95 and r.I > 0.95 and r.E > 0.85
    assert r.S == 1.0
    assert r.importance.shape == (3, 3) and np.all(r.importance >= 0)
    assert np.argmax(r.importance, axis=0).tolist() == [0, 1, 2]
    assert list(r.per_factor.columns[:3]) == ["I", "E", "C"] and list(r.per_factor.index) == ["z1", "z2", "z3"]
    x, y = r.curves["z1"]
    assert len(x) == len(y) == 8 and np.all((y >= 0) & (y <= 1))


def test_rotation_keeps_information_but_loses_disentanglement(rf_scores):
    rot, ident = rf_scores["rotation"], rf_scores["identity"]
    assert rot.I > 0.9
    assert rot.D < 0.7 and rot.C < 0.7
    assert rot.D < ident.D - 0.3


def test_missing_factor_has_no_information(rf_scores):
    pf = rf_scores["missing"].per_factor
    assert pf.loc["z3", "I"] < 0.1
    assert (pf.loc[["z1", "z2"], "I"] > 0.9).all()


def test_noise_is_uninformative_and_e_strict_flags_it(rf_scores):
    r = rf_scores["noise"]
    assert r.I < 0.1
    assert r.E_strict < -0.8  # the flat curve at the baseline: high E, very low strict E
    assert r.E > r.E_strict + 1.0


def test_redundant_code_has_half_size(rf_scores):
    r = rf_scores["redundant"]
    assert r.S == 0.5 and r.I > 0.95 and r.importance.shape == (6, 3)


def test_elementwise_lowers_explicitness_for_linear_probe():
    scores = {}
    for kind in ("identity", "elementwise"):
        c, z, _ = toy_codes(kind, n=1000, k=3, seed=1)
        scores[kind] = dci_es(c, z, probe="lasso", seed=0)
    assert scores["identity"].E > 0.98
    assert scores["elementwise"].E < scores["identity"].E - 0.03
    assert scores["elementwise"].D > 0.8  # still axis-aligned


@pytest.mark.slow
def test_elementwise_lowers_explicitness_for_mlp_probe():
    scores = {}
    for kind in ("identity", "elementwise"):
        c, z, _ = toy_codes(kind, n=400, k=2, seed=2)
        scores[kind] = dci_es(c, z, probe="mlp", capacities=[0, 8], seed=0)
    assert scores["identity"].I > 0.95
    assert scores["elementwise"].E < scores["identity"].E - 0.03


def test_gbt_probe_and_discrete_factors():
    rng = np.random.default_rng(0)
    z = rng.integers(0, 4, size=(600, 2))
    c = z + 0.05 * rng.normal(size=z.shape)
    assert infer_discrete(z).tolist() == [True, True]
    r = dci_es(c, z, probe="gbt", capacities=[1, 2, 3], seed=0)
    assert r.per_factor["discrete"].all() and (r.per_factor["I_kind"] == "accuracy").all()
    assert r.per_factor["baseline_loss"].between(0.65, 0.8).all()  # about (K-1)/K = 0.75
    assert r.I > 0.95 and r.D > 0.9


def test_discrete_flag_overrides_inference_and_mlp_handles_classes():
    rng = np.random.default_rng(1)
    z = np.c_[rng.integers(0, 3, 400), rng.uniform(-1, 1, 400)]
    r = dci_es(z + 0.01 * rng.normal(size=z.shape), z, discrete=[True, False], probe="mlp", capacities=[0, 4],
               seed=0)
    assert r.per_factor["discrete"].tolist() == [True, False]
    assert r.per_factor["I"].min() > 0.9


def test_progress_and_cancel():
    c, z, _ = toy_codes("identity", n=300, k=2, seed=0)
    seen = []
    dci_es(c, z, progress=lambda s, t, m: seen.append((s, t)), capacities=[1, 2])
    assert seen and seen[-1][0] == seen[-1][1]
    with pytest.raises(Cancelled):
        dci_es(c, z, progress=lambda s, t, m: True)


def test_seeded_results_are_reproducible():
    c, z, _ = toy_codes("rotation", n=400, k=2, seed=3)
    a, b = dci_es(c, z, seed=5, capacities=[1, 4]), dci_es(c, z, seed=5, capacities=[1, 4])
    assert a.D == b.D and a.I == b.I and np.array_equal(a.importance, b.importance)


# -------------------------------------------------------------------------------------------- bad input


@pytest.mark.parametrize(
    "codes, factors, kwargs, match",
    [
        (np.zeros((100, 2)), np.zeros((90, 2)), {}, "100 rows but the factors have 90"),
        (np.r_[np.full((1, 2), np.nan), np.ones((99, 2))], np.arange(200.0).reshape(100, 2), {}, "NaN"),
        (np.random.default_rng(0).normal(size=(100, 2)), np.c_[np.ones(100), np.arange(100.0)], {}, "constant"),
        (np.ones((1, 2)), np.ones((1, 2)), {}, "at least 20 samples"),
        (np.random.default_rng(0).normal(size=(30, 40)), np.random.default_rng(1).normal(size=(30, 2)), {},
         "40 dimensions but only"),
        (np.zeros((50, 2)), np.arange(100.0).reshape(50, 2), {"probe": "svm"}, "Unknown probe"),
        (np.zeros((50, 2)), np.arange(100.0).reshape(50, 2), {"capacities": [3]}, "at least 2 capacities"),
        (np.zeros((50, 2)), np.arange(100.0).reshape(50, 2), {"capacities": [4, 2]}, "increasing"),
        (np.zeros((50, 2)), np.arange(100.0).reshape(50, 2), {"discrete": [True]}, "one flag per factor"),
        ([["a", "b"]] * 30, np.arange(60.0).reshape(30, 2), {}, "must be numbers"),
    ],
)
def test_bad_input_messages(codes, factors, kwargs, match):
    with pytest.raises(ValueError, match=match):
        dci_es(codes, factors, **kwargs)


def test_too_many_classes_for_discrete_factor():
    z = np.arange(300.0)
    with pytest.raises(ValueError, match="mark it continuous"):
        dci_es(np.c_[z, z], z, discrete=[True])


# ----------------------------------------------------------------------------------------------- uploads


def test_csv_roundtrip_and_npz():
    c, z, names = toy_codes("identity", n=200, k=3, seed=0)
    codes, factors, fn, cn, disc = load_codes_file(to_csv_bytes(c, z, names), "x.csv")
    assert codes.shape == (200, 3) and factors.shape == (200, 3) and fn == ["z1", "z2", "z3"] and disc is None
    np.testing.assert_allclose(codes, c, atol=1e-5)
    buf = io.BytesIO()
    np.savez(buf, codes=c, factors=z, discrete=np.array([False, False, True]), factor_names=np.array(["a", "b", "c"]))
    codes, factors, fn, _, disc = load_codes_file(buf.getvalue(), "x.npz")
    assert fn == ["a", "b", "c"] and disc.tolist() == [False, False, True]


@pytest.mark.parametrize(
    "content, name, match",
    [
        (b"c1,c2\n1,2\n3,4\n", "a.csv", "No factor columns"),
        (b"z1,z2\n1,2\n3,4\n", "a.csv", "No code columns"),
        (b"c1,z1\nx,2\ny,4\n", "a.csv", "not numeric"),
        (b"", "a.csv", "empty"),
        (b"PK\x03\x04garbage", "a.npz", "could not be read as .npz"),
        (b"hello", "a.png", "neither a .csv nor a .npz"),
    ],
)
def test_upload_errors(content, name, match):
    with pytest.raises(ValueError, match=match):
        load_codes_file(content, name)


def test_npz_missing_arrays():
    buf = io.BytesIO()
    np.savez(buf, codes=np.zeros((5, 2)))
    with pytest.raises(ValueError, match="'codes' and 'factors'"):
        load_codes_file(buf.getvalue(), "x.npz")


def test_scores_csv_has_overall_and_factor_rows(rf_scores):
    text = scores_csv({"identity": rf_scores["identity"], "noise": rf_scores["noise"]}).decode()
    df = pd.read_csv(io.StringIO(text))
    assert set(df["representation"]) == {"identity", "noise"}
    assert (df["factor"] == "ALL").sum() == 2 and len(df) == 2 + 2 * 3
    assert {"D", "C", "I", "E", "S"} <= set(df.columns)


# ------------------------------------------------------------------------------------------------ sources


def test_toy_sources_and_errors():
    src = available_sources()
    assert {"toy:identity", "toy:rotation", "toy:noise"} <= set(src)
    rep = load_source("toy:redundant", n=100, k=3, seed=0)
    assert rep.codes.shape == (100, 6) and rep.factors.shape == (100, 3)
    with pytest.raises(ValueError, match="Unknown toy code"):
        toy_codes("spiral")
    with pytest.raises(ValueError, match="Unknown representation source"):
        load_source("camera:1")


@pytest.mark.slow
def test_causal_learners_are_scored():
    assert {"causal:dcrl", "causal:vae", "causal:oracle"} <= set(available_sources())
    oracle = load_source("causal:oracle", n=600, seed=0)
    r = dci_es(oracle.codes, oracle.factors, seed=0)
    assert r.D > 0.95 and r.C > 0.95 and r.I > 0.95  # the oracle's codes are the true latents
    for learner in ("dcrl", "vae"):
        rep = load_source(f"causal:{learner}", n=600, seed=0)
        res = dci_es(rep.codes, rep.factors, seed=0, capacities=[1, 4, 8])
        assert rep.codes.shape[0] == 600 and 0 <= res.I <= 1 and np.isfinite(res.D)


@pytest.mark.slow
def test_matched_slots_are_scored():
    from backend.slots import matched_slots

    assert {"slots:sprites", "slots:textured"} <= set(available_sources())
    codes, factors, names, disc = matched_slots(variant="sprites", n=60, seed=10_000)
    assert codes.shape[0] == factors.shape[0] >= 60 and len(names) == factors.shape[1] == len(disc)
    r = dci_es(codes, factors, discrete=disc, seed=0, capacities=[1, 4, 8], factor_names=names)
    assert r.importance.shape == (codes.shape[1], factors.shape[1]) and 0 <= r.I <= 1
    assert r.per_factor["discrete"].tolist() == list(disc)


# ------------------------------------------------------------------------------------------ the comparison


def test_compare_scores_each_source_once_and_reports_errors():
    store = ResultStore(8)
    first = compare(["toy:identity", "toy:noise"], n=300, k=2, seed=0, store=store)
    assert list(first.results) == ["Toy: identity", "Toy: noise"] and not first.pending and not first.errors
    assert first.sources == {"Toy: identity": "toy:identity", "Toy: noise": "toy:noise"}
    assert list(first.scores["representation"]) == ["Toy: identity", "Toy: noise"]
    assert set(first.bars()["score"]) == {"D", "C", "I", "E", "S"} and len(first.bars()) == 10
    # cached: a second call computes nothing (a progress that cancels is never asked)
    again = compare(["toy:identity", "toy:noise"], n=300, k=2, seed=0, store=store, progress=lambda *a: True)
    assert again.results["Toy: identity"] is first.results["Toy: identity"]
    # another setting is pending until computed; a bad source is an error, not an exception
    assert compare(["toy:identity"], n=500, k=2, seed=0, store=store, compute=False).pending == ["toy:identity"]
    bad = compare(["camera:1"], store=store)
    assert bad.pending == ["camera:1"] and "Unknown representation source" in bad.errors[0]


def test_compare_cancel_keeps_what_was_scored():
    store = ResultStore(8)
    calls = []

    def cancel_in_second(step, total, message):
        calls.append(message)
        return message.startswith("Toy: rotation")

    with pytest.raises(Cancelled):
        compare(["toy:identity", "toy:rotation"], n=300, k=2, store=store, progress=cancel_in_second)
    got = compare(["toy:identity", "toy:rotation"], n=300, k=2, store=store, compute=False)
    assert list(got.results) == ["Toy: identity"] and got.pending == ["toy:rotation"]


def test_upload_is_scored_under_its_name():
    c, z, names = toy_codes("rotation", n=300, k=3, seed=4)
    upload = read_upload(to_csv_bytes(c, z, names), "mine.csv")
    got = compare([UPLOAD], upload=upload, store=ResultStore(4))
    r = got.results["Uploaded: mine.csv"]
    assert r.I > 0.8 and r.D < 0.8 and got.notes["Uploaded: mine.csv"] == "your uploaded file"
    assert r.importance_frame().shape == (3, 3) and list(r.importance_frame().columns) == names
    x, env = r.running_curves()["z1"]
    assert np.all(np.diff(env) <= 0) and len(x) == len(env)
    with pytest.raises(ValueError, match="No factor columns"):
        read_upload(b"a,b\n1,2\n", "bad.csv")
