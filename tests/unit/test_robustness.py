"""Robustness backend: shifts, the probit fit on a hand-made zoo, member configs, and retraining zoo
members from their configs (the shipped metrics table must be reproducible)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy.stats import norm

from backend.robustness import KINDS, check_config, fit_pair, member_id, shift
from backend.robustness.metrics import ece, probit_fit


def _digits(n=6):
    rng = np.random.default_rng(0)
    x = np.zeros((n, 16, 16), np.float32)
    x[:, 4:12, 7:9] = 1.0  # a vertical bar, like a "1"
    return x + 0.01 * rng.random(x.shape).astype(np.float32)


@pytest.mark.parametrize("kind", KINDS)
def test_shift_keeps_layout_and_grows_with_severity(kind):
    x = _digits()
    rgb = np.repeat(np.rint(x * 255).astype(np.uint8)[..., None], 3, -1)
    out = shift(rgb, kind, 3, seed=1)
    assert out.shape == rgb.shape and out.dtype == np.uint8
    assert np.array_equal(out, shift(rgb, kind, 3, seed=1))  # seeded
    assert np.array_equal(shift(rgb, kind, 0, seed=1), rgb)  # severity 0 is the identity
    d = [np.abs(shift(x, kind, s, seed=1) - x).mean() for s in (1, 3, 5)]
    assert d[0] > 0 and d[2] > d[0], d


def test_shift_rejects_unknown_kind_and_severity():
    with pytest.raises(ValueError, match="Unknown shift"):
        shift(_digits(), "fog", 1)
    with pytest.raises(ValueError, match="Severity"):
        shift(_digits(), "noise", 6)


def _zoo(slope=0.5, intercept=0.1, n=40):
    ida = np.linspace(0.3, 0.98, n)
    ood = norm.cdf(intercept + slope * norm.ppf(ida))
    rows = pd.DataFrame({"id_domain": "mnist", "id_acc": ida, "acc:uci": ood, "near_chance": False})
    junk = pd.DataFrame({"id_domain": "mnist", "id_acc": [0.1, 0.12], "acc:uci": [0.9, 0.95], "near_chance": True})
    return pd.concat([rows, junk], ignore_index=True)


def test_fit_pair_recovers_a_hand_made_probit_line_and_skips_near_chance():
    f = fit_pair(_zoo(), "mnist", "uci")
    assert f["n"] == 40
    assert f["slope"] == pytest.approx(0.5, abs=1e-6) and f["intercept"] == pytest.approx(0.1, abs=1e-6)
    assert f["r2"] == pytest.approx(1.0) and f["tau"] == pytest.approx(1.0)
    lo, hi = f["intervals"]["slope"]
    assert lo <= 0.5 <= hi and hi - lo < 1e-6
    z = _zoo()[:40]
    noisy = probit_fit(z["id_acc"], np.clip(z["acc:uci"] + np.random.default_rng(0).normal(0, 0.05, 40), 0.01, 0.99))
    assert noisy["intervals"]["r2"][0] < noisy["r2"] < 1
    with pytest.raises(ValueError, match="OOD domain"):
        fit_pair(_zoo(), "mnist", "mnist")


def test_ece_of_calibrated_and_overconfident_predictions():
    y = np.array([0, 1, 0, 1])
    assert ece(np.eye(10)[y], y) == pytest.approx(0.0)
    assert ece(np.eye(10)[1 - y], y) == pytest.approx(1.0)


def test_member_config_checks():
    c = check_config({"arch": "mlp-64"})
    assert member_id(c, 3) == "mnist-mlp-64-none-e5-lr0.003-all-s3"
    for bad, msg in [({"arch": "resnet"}, "architecture"), ({"aug": "cutout"}, "augmentation"),
                     ({"shots": 7}, "Shots"), ({"arch": "logistic", "transfer": "head"}, "Transfer")]:
        with pytest.raises(ValueError, match=msg):
            check_config(bad)


@pytest.mark.slow
def test_retraining_ten_zoo_members_reproduces_their_accuracies():
    from backend.robustness import train_one, zoo

    z = zoo()
    assert len(z) >= 200
    cheap = z[z["transfer"] == "none"].assign(cost=z["steps"] * z["params"]).nsmallest(10, "cost")
    for _, r in cheap.iterrows():
        row = train_one({k: r[k] for k in ("arch", "aug", "epochs", "lr", "shots", "train_domain", "transfer")},
                        seed=int(r["seed"]))
        ood = "mnist" if r["train_domain"] != "mnist" else "uci"
        for col in ("id_acc", f"acc:{ood}", "acc:rotation/3"):
            assert abs(row[col] - r[col]) <= 0.01, (r["id"], col, row[col], r[col])
