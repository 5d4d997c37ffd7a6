"""Probes: one predictor per factor, trained at each capacity of a grid, with an importance matrix.

Every probe returns, for K factors and m capacities, the test losses (K, m) and importances (m, L, K),
plus the x axis the loss-capacity curve is drawn on (DCI-ES: tree depth on a linear axis for forests,
log #parameters per factor for MLPs and random-feature models).

- `rf`    random forest; capacity = max tree depth; Gini importances (as DCI-ES). One forest per factor
          is grown to the largest depth and evaluated truncated at each smaller depth, which is a
          depth-limited forest on the same bootstrap samples and costs one fit instead of m.
- `gbt`   histogram gradient-boosted trees; capacity = max depth; permutation importances on test data
          (computed at each factor's best depth only).
- `lasso` linear Lasso (logistic regression for discrete factors) on the code plus m random Fourier
          features; importance = |coefficients| of the purely linear model (Eastwood & Williams 2018).
- `mlp`   K independent 2-hidden-layer MLPs trained side by side (as DCI-ES's grouped probes);
          capacity = hidden width (0 = linear); permutation importances on test data.
Losses are 1 − R² (continuous) or 1 − accuracy (discrete), clipped to [0, baseline].
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

PROBES = {
    "rf": "Random forest (depth)",
    "gbt": "Gradient-boosted trees (depth)",
    "lasso": "Lasso + random features (log #params)",
    "mlp": "Small MLP (log #params)",
}
DEFAULT_CAPACITIES = {
    "rf": [1, 2, 3, 4, 6, 8, 12, 16],
    "gbt": [1, 2, 3, 4, 6],
    "lasso": [0, 16, 64, 256],
    "mlp": [0, 2, 4, 8, 16, 32],
}
AXIS = {"rf": "max tree depth", "gbt": "max tree depth", "lasso": "log #parameters per factor",
        "mlp": "log #parameters per factor"}
RF_TREES = 20
RF_MAX_SAMPLES = 0.5  # each tree sees a half-size bootstrap: half the fit time, same test R² here
GBT_ROUNDS = 40


@dataclass
class Targets:
    """Factors split into train/test; discrete ones encoded as class ids 0..C-1."""

    train: np.ndarray          # (n_train, K)
    test: np.ndarray           # (n_test, K)
    discrete: np.ndarray       # (K,) bool
    n_classes: np.ndarray      # (K,) int, 0 for continuous
    baseline: np.ndarray       # (K,) loss of the best constant predictor


def loss(pred, y, discrete: bool, baseline: float) -> float:
    """1 − R² or 1 − accuracy on test data, clipped to [0, baseline] (a constant does at least as well)."""
    if discrete:
        value = 1.0 - float(np.mean(pred == y))
    else:
        ss = float(((y - y.mean()) ** 2).sum())
        value = float(((y - pred) ** 2).sum()) / ss if ss > 0 else 1.0
    return float(min(max(value, 0.0), baseline))


def check_capacities(probe: str, capacities) -> list:
    caps = list(DEFAULT_CAPACITIES[probe] if capacities is None else capacities)
    try:
        caps = [int(c) for c in caps]
    except (TypeError, ValueError) as e:
        raise ValueError(f"Capacities must be whole numbers; got {capacities!r}.") from e
    if len(caps) < 2:
        raise ValueError("Give at least 2 capacities: explicitness needs a loss-capacity curve.")
    if any(b <= a for a, b in zip(caps, caps[1:])):
        raise ValueError(f"Capacities must be strictly increasing; got {caps}.")
    low = 1 if probe in ("rf", "gbt") else 0
    if caps[0] < low:
        raise ValueError(f"The {probe} probe needs capacities ≥ {low}; got {caps[0]}.")
    if probe in ("rf", "gbt") and caps[-1] > 64:
        raise ValueError("Tree depths above 64 are not supported; use at most 64.")
    if probe == "mlp" and caps[-1] > 512:
        raise ValueError("MLP widths above 512 are too slow here; use at most 512.")
    if probe == "lasso" and caps[-1] > 4096:
        raise ValueError("More than 4096 random features is too slow here; use at most 4096.")
    return caps


def run_probe(probe, Xtr, Xte, t: Targets, capacities, seed, tick):
    """Dispatch; returns (x_axis (m,), losses (K, m), importances (m, L, K))."""
    fn = {"rf": _rf, "gbt": _gbt, "lasso": _lasso, "mlp": _mlp}[probe]
    return fn(Xtr, Xte, t, capacities, seed, tick)


# ---------------------------------------------------------------------------------------------- rf
def _tree_truncation(tree, depths):
    """For each depth d: map node -> its ancestor at depth min(d, depth(node)); and Gini importances."""
    t = tree.tree_
    left, right, n = t.children_left, t.children_right, t.node_count
    parent = np.full(n, -1)
    inner = np.nonzero(left >= 0)[0]
    parent[left[inner]] = inner
    parent[right[inner]] = inner
    depth = np.zeros(n, dtype=int)
    levels, frontier = [], np.array([0])
    while frontier.size:
        levels.append(frontier)
        kids = np.concatenate([left[frontier], right[frontier]])
        kids = kids[kids >= 0]
        depth[kids] = depth[parent[kids]] + 1
        frontier = kids
    w, imp = t.weighted_n_node_samples, t.impurity
    dec = np.zeros(n)
    dec[inner] = w[inner] * imp[inner] - w[left[inner]] * imp[left[inner]] - w[right[inner]] * imp[right[inner]]
    n_features = tree.n_features_in_
    out = []
    for d in depths:
        anc = np.arange(n)
        for lv, nodes in enumerate(levels):
            if lv > d:
                anc[nodes] = anc[parent[nodes]]
        used = inner[depth[inner] < d]
        gi = np.bincount(t.feature[used], weights=dec[used], minlength=n_features)
        out.append((anc, gi / gi.sum() if gi.sum() > 0 else gi))
    return out


def _rf(Xtr, Xte, t: Targets, caps, seed, tick):
    from sklearn.ensemble import RandomForestClassifier, RandomForestRegressor

    K, L, m = t.train.shape[1], Xtr.shape[1], len(caps)
    losses, imps = np.zeros((K, m)), np.zeros((m, L, K))
    for j in range(K):
        tick(f"random forest for factor {j + 1}/{K}")
        if t.discrete[j]:
            model = RandomForestClassifier(RF_TREES, max_depth=caps[-1], max_samples=RF_MAX_SAMPLES, random_state=seed,
                                           n_jobs=-1)
        else:
            model = RandomForestRegressor(RF_TREES, max_depth=caps[-1], max_samples=RF_MAX_SAMPLES, random_state=seed,
                                          n_jobs=-1)
        ytr = t.train[:, j].astype(int) if t.discrete[j] else t.train[:, j]
        model.fit(Xtr, ytr)
        leaves = model.apply(Xte)  # (n_test, trees)
        preds = [np.zeros((len(Xte), len(model.classes_)) if t.discrete[j] else len(Xte)) for _ in caps]
        for e, est in enumerate(model.estimators_):
            value = est.tree_.value[:, 0, :]
            for c, (anc, gi) in enumerate(_tree_truncation(est, caps)):
                v = value[anc[leaves[:, e]]]
                if t.discrete[j]:
                    preds[c] += v / np.maximum(v.sum(1, keepdims=True), 1e-12)
                else:
                    preds[c] += v[:, 0]
                imps[c, :, j] += gi / len(model.estimators_)
        for c in range(m):
            p = model.classes_[preds[c].argmax(1)] if t.discrete[j] else preds[c] / len(model.estimators_)
            losses[j, c] = loss(p, t.test[:, j], t.discrete[j], t.baseline[j])
    return np.asarray(caps, float), losses, imps


# --------------------------------------------------------------------------------------------- gbt
def _permutation(predict_loss, Xte, seed, repeats=2):
    """Increase of each factor's test loss when one code dimension is shuffled: (L, K), clipped at 0."""
    rng = np.random.default_rng(seed)
    base = predict_loss(Xte)
    out = np.zeros((Xte.shape[1], len(base)))
    for i in range(Xte.shape[1]):
        for _ in range(repeats):
            Xp = Xte.copy()
            Xp[:, i] = Xp[rng.permutation(len(Xp)), i]
            out[i] += (predict_loss(Xp) - base) / repeats
    return np.maximum(out, 0.0)


def _gbt(Xtr, Xte, t: Targets, caps, seed, tick):
    from sklearn.ensemble import HistGradientBoostingClassifier, HistGradientBoostingRegressor
    from threadpoolctl import threadpool_limits

    K, L, m = t.train.shape[1], Xtr.shape[1], len(caps)
    losses, imps = np.zeros((K, m)), np.zeros((m, L, K))
    with threadpool_limits(1):  # small problems: OpenMP threads only fight over a loaded CPU
        for j in range(K):
            models = []
            for c, d in enumerate(caps):
                tick(f"boosted trees, factor {j + 1}/{K}, depth {d}")
                cls = HistGradientBoostingClassifier if t.discrete[j] else HistGradientBoostingRegressor
                model = cls(max_depth=d, max_iter=GBT_ROUNDS, early_stopping=False, random_state=seed)
                ytr = t.train[:, j].astype(int) if t.discrete[j] else t.train[:, j]
                models.append(model.fit(Xtr, ytr))
                losses[j, c] = loss(model.predict(Xte), t.test[:, j], t.discrete[j], t.baseline[j])
            # permutation importances only where dci_es reads them: the factor's best capacity
            best = int(losses[j].argmin())

            def pl(X, model=models[best], j=j):
                return np.array([1.0 - _score(model.predict(X), t.test[:, j], t.discrete[j])])

            imps[best, :, j] = _permutation(pl, Xte, seed)[:, 0]
    return np.asarray(caps, float), losses, imps


def _score(pred, y, discrete):
    if discrete:
        return float(np.mean(pred == y))
    ss = float(((y - y.mean()) ** 2).sum())
    return 1.0 - float(((y - pred) ** 2).sum()) / ss if ss > 0 else 0.0


# ------------------------------------------------------------------------------------------- lasso
def _rff(X, m, seed):
    if m == 0:
        return X
    rng = np.random.default_rng(seed + 7919)
    W = rng.normal(size=(X.shape[1], m))
    b = rng.uniform(0, 2 * np.pi, size=m)
    return np.hstack([X, np.sqrt(2.0 / m) * np.cos(X @ W + b) * np.sqrt(X.shape[1])])


def _lasso(Xtr, Xte, t: Targets, caps, seed, tick):
    import warnings

    from sklearn.exceptions import ConvergenceWarning
    from sklearn.linear_model import Lasso, LogisticRegression

    K, L, m = t.train.shape[1], Xtr.shape[1], len(caps)
    losses, imps = np.zeros((K, m)), np.zeros((m, L, K))
    x_axis = np.log([L + c + 1 for c in caps])
    for c, n_feat in enumerate(caps):
        Ftr, Fte = _rff(Xtr, n_feat, seed), _rff(Xte, n_feat, seed)
        for j in range(K):
            tick(f"linear probe, {n_feat} random features, factor {j + 1}/{K}")
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", ConvergenceWarning)
                if t.discrete[j]:
                    model = LogisticRegression(C=1.0, max_iter=300).fit(Ftr, t.train[:, j].astype(int))
                    pred = model.predict(Fte)
                    coef = np.abs(model.coef_).sum(0)
                else:
                    mu, sd = t.train[:, j].mean(), t.train[:, j].std()
                    model = Lasso(alpha=0.01, max_iter=2000).fit(Ftr, (t.train[:, j] - mu) / sd)
                    pred = model.predict(Fte) * sd + mu
                    coef = np.abs(model.coef_)
            losses[j, c] = loss(pred, t.test[:, j], t.discrete[j], t.baseline[j])
            if c == 0:
                imps[:, :, j] = coef[:L]  # importance of the linear model, at every capacity
    return x_axis, losses, imps


# --------------------------------------------------------------------------------------------- mlp
MLP_STEPS = 200


def _mlp_params(L, w, out):
    return (L + 1) * out if w == 0 else L * w + w + w * w + w + w * out + out


def _mlp(Xtr, Xte, t: Targets, caps, seed, tick):
    import torch

    from backend.core.device import get_device

    dev = get_device()
    threads = torch.get_num_threads()
    if dev.type == "cpu":
        torch.set_num_threads(1)  # these matrices are tiny: a second thread only adds contention
    try:
        return _mlp_fit(Xtr, Xte, t, caps, seed, tick, dev)
    finally:
        torch.set_num_threads(threads)


def _mlp_fit(Xtr, Xte, t: Targets, caps, seed, tick, dev):
    import torch

    K, L, m = t.train.shape[1], Xtr.shape[1], len(caps)
    out = int(max(2, t.n_classes.max()))
    losses, imps = np.zeros((K, m)), np.zeros((m, L, K))
    x_axis = np.log([_mlp_params(L, w, 1) for w in caps])
    disc = torch.as_tensor(t.discrete, device=dev)
    # logits beyond a factor's class count are masked; continuous factors use output 0 and MSE
    mask = torch.full((K, out), float("-inf"), device=dev)
    for j in range(K):
        mask[j, : max(int(t.n_classes[j]), 1)] = 0.0
    ytr = torch.as_tensor(t.train, dtype=torch.float32, device=dev)
    mu, sd = ytr.mean(0), ytr.std(0).clamp_min(1e-8)
    ytr_n = torch.where(disc, ytr, (ytr - mu) / sd).T.contiguous()  # (K, n)
    xtr = torch.as_tensor(Xtr, dtype=torch.float32, device=dev)

    def forward(params, x):
        h = x.unsqueeze(0).expand(K, -1, -1)
        for i, (W, b) in enumerate(params):
            h = torch.baddbmm(b.unsqueeze(1), h, W)
            if i < len(params) - 1:
                h = torch.relu(h)
        return h  # (K, n, out)

    def objective(o, y):
        mse = (o[..., 0] - y) ** 2                                               # (K, n)
        logp = torch.log_softmax(o + mask.unsqueeze(1), dim=-1)
        idx = torch.where(disc.unsqueeze(1), y, torch.zeros_like(y)).long().unsqueeze(-1)
        ce = -logp.gather(-1, idx).squeeze(-1)
        return torch.where(disc.unsqueeze(1), ce, mse).mean(1).sum()

    def predict(params, X):
        with torch.no_grad():
            o = forward(params, torch.as_tensor(X, dtype=torch.float32, device=dev))
            cls = (o + mask.unsqueeze(1)).argmax(-1).float()
            reg = o[..., 0] * sd.unsqueeze(1) + mu.unsqueeze(1)
            return torch.where(disc.unsqueeze(1), cls, reg).T.cpu().numpy()  # (n, K)

    def test_losses(params, X):
        p = predict(params, X)
        return np.array([loss(p[:, j], t.test[:, j], t.discrete[j], t.baseline[j]) for j in range(K)])

    for c, w in enumerate(caps):
        tick(f"MLP probes of width {w}")
        g = torch.Generator(device="cpu").manual_seed(seed * 1000 + c)
        dims = [L, out] if w == 0 else [L, w, w, out]
        params = []
        for i, (a, b) in enumerate(zip(dims, dims[1:])):
            scale = (2.0 / a) ** 0.5 if i < len(dims) - 2 else 0.1 / a**0.5  # He init; a small output layer
            W = (torch.randn(K, a, b, generator=g) * scale).to(dev).requires_grad_()
            params.append((W, torch.zeros(K, b, device=dev, requires_grad=True)))
        opt = torch.optim.Adam([p for pair in params for p in pair], lr=3e-2)
        sched = torch.optim.lr_scheduler.MultiStepLR(opt, [int(0.7 * MLP_STEPS), int(0.9 * MLP_STEPS)], 0.1)
        for _ in range(MLP_STEPS):
            opt.zero_grad()
            objective(forward(params, xtr), ytr_n).backward()
            opt.step()
            sched.step()
        losses[:, c] = test_losses(params, Xte)
        imps[c] = _permutation(lambda X, params=params: test_losses(params, X), Xte, seed)
    return x_axis, losses, imps
