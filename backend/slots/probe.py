"""Downstream property probes on frozen, Hungarian-matched slots (Dittadi et al., ICML 2022 protocol).

Each visible object is matched to one slot by its mask (cost 1 - cosine between the true object mask
and the slot's soft mask, `scipy.optimize.linear_sum_assignment`, as `matching: mask` in
addtt/object-centric-library). A readout shared by all slots then predicts the object's shape and
colour bin (accuracy) and its size and position (R²) on scenes it was not fitted on.
"""

from __future__ import annotations

import functools

import numpy as np

FACTOR_NAMES = ["shape", "color", "size", "x", "y"]
DISCRETE = np.array([True, True, False, False, False])


def match_objects(labels: np.ndarray, masks: np.ndarray, n_objects: int) -> list[tuple[int, int]]:
    """(object index 1..n, slot index) pairs for the visible objects of one scene."""
    from scipy.optimize import linear_sum_assignment

    k = masks.shape[0]
    m = masks.reshape(k, -1).astype(np.float64)
    objs = [i for i in range(1, n_objects + 1) if (labels == i).any()]
    if not objs:
        return []
    t = np.stack([(labels == i).ravel().astype(np.float64) for i in objs])
    cos = (t @ m.T) / (np.linalg.norm(t, axis=1)[:, None] * np.linalg.norm(m, axis=1)[None, :] + 1e-8)
    r, c = linear_sum_assignment(1.0 - cos)
    return [(objs[i], int(j)) for i, j in zip(r, c)]


@functools.lru_cache(maxsize=4)
def _scenes(variant: str, n: int, seed: int, res: int):
    """The probe's scenes, rendered once per process (a trainer probes every snapshot on the same scenes)."""
    from backend.slots.data import make_scenes

    return make_scenes(n, seed=seed, variant=variant, res=res)


def matched_slots(variant: str = "sprites", n: int = 300, seed: int = 10_000, model=None,
                  num_slots: int | None = None, iters: int | None = None):
    """Slot vectors of held-out scenes matched to their objects, with the objects' properties.

    Returns codes float32 (M, D) (one row per visible object), factors float (M, 5) (shape index,
    colour bin, size, x, y), factor_names list[str] and discrete bool (5,).
    """
    from backend.slots.api import load_model

    if model is None:
        model = load_model(variant)
    n = int(n)
    if n < 1:
        raise ValueError("Ask for at least one scene.")
    imgs, labels, objects = _scenes(variant, n, seed, model.resolution)
    out = model.segment(imgs, num_slots=num_slots, iters=iters, seed=0)
    codes, factors = [], []
    for i in range(n):
        for obj, slot in match_objects(labels[i], out.masks[i], len(objects[i])):
            o = objects[i][obj - 1]
            codes.append(out.slots[i, slot])
            factors.append([o["shape_idx"], o["color_idx"], o["size"], o["x"], o["y"]])
    return (np.asarray(codes, np.float32).reshape(-1, out.slots.shape[-1]), np.asarray(factors, np.float64),
            list(FACTOR_NAMES), DISCRETE.copy())


def fit_probe(train_codes, train_factors, test_codes, test_factors, kind: str = "linear", seed: int = 0) -> dict:
    """Per-factor score on the test rows: accuracy (discrete) or R² (continuous)."""
    from sklearn.linear_model import LogisticRegression, Ridge
    from sklearn.metrics import accuracy_score, r2_score
    from sklearn.neural_network import MLPClassifier, MLPRegressor
    from sklearn.preprocessing import StandardScaler

    sc = StandardScaler().fit(train_codes)
    xtr, xte = sc.transform(train_codes), sc.transform(test_codes)
    scores = {}
    for j, name in enumerate(FACTOR_NAMES):
        ytr, yte = train_factors[:, j], test_factors[:, j]
        if DISCRETE[j]:
            ytr, yte = ytr.astype(int), yte.astype(int)
            if len(np.unique(ytr)) < 2:
                scores[name] = float(np.mean(yte == ytr[0]))
                continue
            clf = (LogisticRegression(max_iter=300, C=1.0) if kind == "linear"
                   else MLPClassifier((256,), max_iter=300, random_state=seed, early_stopping=False))
            scores[name] = float(accuracy_score(yte, clf.fit(xtr, ytr).predict(xte)))
        else:
            reg = Ridge(alpha=1.0) if kind == "linear" else MLPRegressor((256,), max_iter=300, random_state=seed)
            scores[name] = float(r2_score(yte, reg.fit(xtr, ytr).predict(xte)))
    return scores


def probe_scores(model, variant: str = "sprites", n_train: int = 400, n_test: int = 200, seed: int = 30_000,
                 kind: str = "linear") -> dict:
    """Fit a probe on slots of `n_train` scenes (seed) and score it on `n_test` others (seed + 1).

    Returns per-factor scores (shape/color accuracy, size/x/y R²) and their mean `mean`.
    """
    ctr, ftr, _, _ = matched_slots(variant, n_train, seed, model)
    cte, fte, _, _ = matched_slots(variant, n_test, seed + 1, model)
    s = fit_probe(ctr, ftr, cte, fte, kind=kind)
    s["mean"] = float(np.mean([s[k] for k in FACTOR_NAMES]))
    return s
