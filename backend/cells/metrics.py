"""Metrics for generated single cells, following CFGen's evaluation code (theislab/CFGen, cfgen/eval/):
a PCA space fit on real held-out cells (normalize_total 1e4, log1p, 30 PCs; generated cells are projected
with the *real* mean and components), per-cell-type 2-Wasserstein (exact OT, uniform weights), RBF-MMD
(biased MMD^2 with a sum of RBF kernels, sigma in {0.01, 0.1, 1, 10, 100}) and a 5-NN real-vs-generated
macro-F1 (leave-one-out on the pooled cells; ~0.5 = indistinguishable), averaged over types. Beside them, metrics
without sample-size artefacts: the unbiased MMD^2 (U-statistic, no self-similarity terms; ~0 for two samples of
one distribution at any size), W2 over all cells pooled, and per-type averages over types with >= 20 real cells
only (`LARGE`); `interval95` gives a t-interval over generation seeds. Plus the per-gene negative-binomial baseline, real reference cells and count-realism
statistics.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from backend.cells.data import log_normalize
from backend.cells.threads import one_thread

SIGMAS = (0.01, 0.1, 1.0, 10.0, 100.0)
LARGE = 20  # per-type averages that rank models use only types with at least this many real cells


# --- distances on point clouds ---------------------------------------------------------------------


def _sqdist(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    d = (a * a).sum(1)[:, None] + (b * b).sum(1)[None, :] - 2.0 * a @ b.T
    return np.maximum(d, 0.0)


def rbf_mmd(x: np.ndarray, y: np.ndarray, sigmas=SIGMAS) -> float:
    """Biased MMD^2 with the kernel sum_s exp(-|a-b|^2 / (2 s^2)) (CFGen's mix_rbf_mmd2); 0 for identical sets."""
    x = np.asarray(x, np.float64)
    y = np.asarray(y, np.float64)
    dxx, dyy, dxy = _sqdist(x, x), _sqdist(y, y), _sqdist(x, y)
    total = 0.0
    for s in sigmas:
        g = 1.0 / (2.0 * s * s)
        total += np.exp(-g * dxx).mean() + np.exp(-g * dyy).mean() - 2.0 * np.exp(-g * dxy).mean()
    return float(max(total, 0.0))


def mmd2_unbiased(x: np.ndarray, y: np.ndarray, sigmas=SIGMAS) -> float:
    """Unbiased MMD^2 (the U-statistic) with the same kernel sum as `rbf_mmd`: the within-set means leave out
    each point's similarity to itself, so two samples of one distribution score ~0 at any size (the biased
    estimate adds about n_sigmas * (1/n + 1/m) at small bandwidths). Can be slightly negative; needs >= 2 each."""
    x = np.asarray(x, np.float64)
    y = np.asarray(y, np.float64)
    n, m = len(x), len(y)
    if n < 2 or m < 2:
        raise ValueError("The unbiased MMD needs at least 2 cells in each set.")
    dxx, dyy, dxy = _sqdist(x, x), _sqdist(y, y), _sqdist(x, y)
    total = 0.0
    for s in sigmas:
        g = 1.0 / (2.0 * s * s)
        kxx, kyy = np.exp(-g * dxx), np.exp(-g * dyy)
        total += ((kxx.sum() - np.trace(kxx)) / (n * (n - 1)) + (kyy.sum() - np.trace(kyy)) / (m * (m - 1))
                  - 2.0 * np.exp(-g * dxy).mean())
    return float(total)


def interval95(values) -> tuple[float, float, float]:
    """(mean, low, high): the 95% Student-t interval of the mean of `values` (e.g. one per generation seed);
    a single value gives a zero-width interval."""
    from scipy.stats import t

    v = np.asarray(values, np.float64)
    mean = float(v.mean())
    if len(v) < 2:
        return mean, mean, mean
    half = float(t.ppf(0.975, len(v) - 1) * v.std(ddof=1) / np.sqrt(len(v)))
    return mean, mean - half, mean + half


def wasserstein2(x: np.ndarray, y: np.ndarray, max_lp: int = 250_000, seed: int = 0) -> float:
    """Exact 2-Wasserstein distance between two empirical sets with uniform weights.

    Equal sizes: an assignment problem (scipy's linear_sum_assignment). Unequal sizes: the transport LP
    (HiGHS) when n*m <= max_lp, otherwise both sets are subsampled to the smaller size.
    """
    from scipy.optimize import linear_sum_assignment

    x = np.asarray(x, np.float64)
    y = np.asarray(y, np.float64)
    n, m = len(x), len(y)
    if n == 0 or m == 0:
        return float("nan")
    if n != m and n * m > max_lp:
        rng = np.random.default_rng(seed)
        k = min(n, m)
        x = x[rng.choice(n, k, replace=False)] if n > k else x
        y = y[rng.choice(m, k, replace=False)] if m > k else y
        n = m = k
    c = _sqdist(x, y)
    if n == m:
        r, col = linear_sum_assignment(c)
        return float(np.sqrt(c[r, col].mean()))
    from scipy.optimize import linprog
    from scipy.sparse import coo_matrix, vstack

    rows_a = coo_matrix((np.ones(n * m), (np.repeat(np.arange(n), m), np.arange(n * m))), shape=(n, n * m))
    rows_b = coo_matrix((np.ones(n * m), (np.tile(np.arange(m), n), np.arange(n * m))), shape=(m, n * m))
    a_eq = vstack([rows_a, rows_b]).tocsr()
    b_eq = np.concatenate([np.full(n, 1.0 / n), np.full(m, 1.0 / m)])
    res = linprog(c.ravel(), A_eq=a_eq, b_eq=b_eq, bounds=(0, None), method="highs")
    return float(np.sqrt(max(res.fun, 0.0)))


def offset_and_spread(x_real: np.ndarray, x_gen: np.ndarray) -> tuple[float, float]:
    """What W2 mixes: the distance between the two sets' centroids, and the generated set's RMS distance to its
    centroid over the real set's (1 = as spread out as the real cells, < 1 = under-dispersed)."""
    ca, cb = x_real.mean(0), x_gen.mean(0)
    sa = float(np.sqrt(((x_real - ca) ** 2).sum(1).mean()))
    sb = float(np.sqrt(((x_gen - cb) ** 2).sum(1).mean()))
    return float(np.sqrt(((ca - cb) ** 2).sum())), (sb / sa if sa > 0 else float("nan"))


def knn_f1(x_real: np.ndarray, x_gen: np.ndarray, k: int = 5) -> float:
    """Macro-F1 of a leave-one-out k-NN real-vs-generated classifier on the pooled cells (~0.5 = indistinguishable).

    CFGen's `compute_knn_real_fake` scores the fitted points themselves (each point votes for itself), which lifts
    indistinguishable sets to ~0.65; leaving each cell out restores 0.5 as the ideal.
    """
    from sklearn.metrics import f1_score
    from sklearn.neighbors import NearestNeighbors

    x = np.concatenate([x_real, x_gen])
    y = np.concatenate([np.ones(len(x_real)), np.zeros(len(x_gen))])
    kk = min(k, len(x) - 1)
    idx = NearestNeighbors(n_neighbors=kk + 1).fit(x).kneighbors(x, return_distance=False)
    own = idx == np.arange(len(x))[:, None]
    # drop each cell itself (or, for exact duplicates, the last neighbour) and vote with the other k
    keep = np.where(own.any(1)[:, None], ~own, np.arange(kk + 1)[None, :] < kk)
    votes = y[idx[keep].reshape(len(x), kk)].mean(1)
    return float(f1_score(y, (votes > 0.5).astype(float), average="macro"))


# --- PCA space ----------------------------------------------------------------------------------------


class PCASpace:
    """normalize_total(1e4) + log1p + PCA fit on real cells; `project` uses the real mean and components."""

    def __init__(self, counts, n_pcs: int = 30, seed: int = 0):
        from sklearn.decomposition import PCA

        x = log_normalize(counts).toarray()
        n = max(1, min(n_pcs, x.shape[0] - 1, x.shape[1]))
        self.mean = x.mean(0)
        self.pca = PCA(n_components=n, random_state=seed, svd_solver="full").fit(x - self.mean)
        self.components = self.pca.components_
        self.real = (x - self.mean) @ self.components.T

    def project(self, counts) -> np.ndarray:
        x = log_normalize(counts).toarray()
        return (x - self.mean) @ self.components.T


def align_genes(real, gen):
    """gen's counts over real's genes (ValueError if genes are missing)."""
    if list(gen.var_names) == list(real.var_names):
        return gen.X
    missing = [g for g in real.var_names if g not in set(gen.var_names)]
    if missing:
        raise ValueError(f"The generated cells lack {len(missing)} of the real genes (e.g. {missing[0]}); "
                         "compare cells over the same genes.")
    return gen[:, list(real.var_names)].X


@one_thread
def evaluate(real, gen, by: str | None = "cell_type", n_pcs: int = 30, min_cells: int = 2, large: int = LARGE,
             knn_min: int = 10) -> dict:
    """Distances between real and generated cells in a 30-PC space fit on the real cells.

    `w2_pooled`: W2 between all real and all generated cells (one set each; with one generated cell per real cell
    the types are pooled by their real proportions). Per group of `by` (present in both with >= `min_cells` cells
    each): W2, CFGen's biased RBF-MMD, the unbiased MMD^2 (`mmd2_u`) and the 5-NN F1 (only for groups with
    >= `knn_min` cells on both sides; leave-one-out on 2-9 cells is biased towards 0). `rbf_mmd`, `w2`, `mmd2_u`
    average all groups (CFGen's protocol); `*_large` only groups with >= `large` real cells, the ones that rank
    (on a handful of cells W2 mostly measures sampling noise); `per_type` flags the others `too_small`.
    Per type also the centroid offset and the spread ratio (`offset_and_spread`), the two things W2 mixes.
    Returns {"rbf_mmd", "w2", "knn_f1", "mmd2_u", "w2_pooled", "spread_ratio", "w2_large", "rbf_mmd_large",
    "mmd2_u_large", "n_types", "n_types_large", "per_type"}.
    """
    if real.n_obs < 2 or gen.n_obs < 2:
        raise ValueError("Evaluation needs at least 2 real and 2 generated cells.")
    space = PCASpace(real.X, n_pcs)
    rp, gp = space.real, space.project(align_genes(real, gen))
    if by is None or by not in real.obs or by not in gen.obs:
        groups_r = np.array(["all"] * real.n_obs)
        groups_g = np.array(["all"] * gen.n_obs)
    else:
        groups_r = real.obs[by].astype(str).to_numpy()
        groups_g = gen.obs[by].astype(str).to_numpy()
    rows = []
    for t in pd.unique(groups_r):
        a, b = rp[groups_r == t], gp[groups_g == t]
        if len(a) < min_cells or len(b) < min_cells:
            continue
        f1 = knn_f1(a, b) if min(len(a), len(b)) >= knn_min else np.nan
        offset, ratio = offset_and_spread(a, b)
        rows.append({"type": t, "n_real": len(a), "n_gen": len(b), "w2": wasserstein2(a, b),
                     "rbf_mmd": rbf_mmd(a, b), "mmd2_u": mmd2_unbiased(a, b), "knn_f1": f1,
                     "centroid_offset": offset, "spread_ratio": ratio, "too_small": len(a) < large})
    per = pd.DataFrame(rows, columns=["type", "n_real", "n_gen", "w2", "rbf_mmd", "mmd2_u", "knn_f1",
                                      "centroid_offset", "spread_ratio", "too_small"])
    if per.empty:
        raise ValueError(f"No {by or 'group'} has at least {min_cells} real and {min_cells} generated cells.")
    big = per[~per["too_small"].astype(bool)]
    f1 = per["knn_f1"].dropna()

    def big_mean(col):
        return float(big[col].mean()) if len(big) else float("nan")

    return {"rbf_mmd": float(per["rbf_mmd"].mean()), "w2": float(per["w2"].mean()),
            "knn_f1": float(f1.mean()) if len(f1) else float("nan"), "mmd2_u": float(per["mmd2_u"].mean()),
            "w2_pooled": wasserstein2(rp, gp), "spread_ratio": float(per["spread_ratio"].mean()),
            "w2_large": big_mean("w2"), "rbf_mmd_large": big_mean("rbf_mmd"), "mmd2_u_large": big_mean("mmd2_u"),
            "n_types": len(per), "n_types_large": len(big), "per_type": per}


# --- baseline ------------------------------------------------------------------------------------------


class NBBaseline:
    """Independent per-gene negative binomial per cell type, fit by moments (theta = mu^2 / (var - mu);
    Poisson where var <= mu). It ignores gene-gene correlation and library size: the floor CFGen must beat."""

    def __init__(self, counts, labels):
        import scipy.sparse as sp

        x = sp.csr_matrix(counts, dtype=np.float64)
        labels = np.asarray(labels).astype(str)
        self.params = {}
        for c in pd.unique(labels):
            xc = x[labels == c]
            mu = np.asarray(xc.mean(0)).ravel()
            var = np.asarray(xc.multiply(xc).mean(0)).ravel() - mu**2
            if xc.shape[0] > 1:
                var = var * xc.shape[0] / (xc.shape[0] - 1)
            theta = np.where(var > mu + 1e-9, mu**2 / np.maximum(var - mu, 1e-9), 1e6)
            self.params[c] = (mu, np.clip(theta, 1e-4, 1e6))
        self.all = (np.asarray(x.mean(0)).ravel(), None)

    def sample(self, labels, seed: int = 0) -> np.ndarray:
        from backend.cells.autoencoder import sample_nb

        rng = np.random.default_rng(seed)
        labels = np.asarray(labels).astype(str)
        out = np.zeros((len(labels), len(self.all[0])), np.float32)
        for c in pd.unique(labels):
            if c not in self.params:
                raise ValueError(f"The baseline has no cells of type {c!r}.")
            rows = np.flatnonzero(labels == c)
            mu, theta = self.params[c]
            out[rows] = sample_nb(np.broadcast_to(mu, (len(rows), len(mu))), theta, rng)
        return out


def baseline_cells(train, labels_out, by: str = "cell_type", seed: int = 0):
    """AnnData of baseline cells with the given per-cell labels, over train's genes."""
    import anndata as ad
    import scipy.sparse as sp

    nb = NBBaseline(train.X, train.obs[by].to_numpy())
    x = nb.sample(labels_out, seed=seed)
    obs = pd.DataFrame({by: pd.Categorical(np.asarray(labels_out).astype(str))},
                       index=[f"nb-{i}" for i in range(len(labels_out))])
    return ad.AnnData(X=sp.csr_matrix(x), obs=obs, var=pd.DataFrame(index=list(train.var_names)))


@one_thread
def reference_cells(train, labels, by: str, seed: int = 0, cap: bool = False):
    """Real training cells with the per-group counts of `labels`: what a perfect generator could score.

    Per group (in order of first appearance), that many distinct training cells, drawn with replacement where the
    group has fewer; `cap=True` takes at most all of a group's cells instead (no repeats). Groups without training
    cells are skipped."""
    rng = np.random.default_rng(seed)
    labels = np.asarray(labels).astype(str)
    train_labels = train.obs[by].astype(str).to_numpy()
    pick = []
    for t in pd.unique(labels):
        rows, n = np.flatnonzero(train_labels == t), int((labels == t).sum())
        if len(rows):
            n = min(n, len(rows)) if cap else n
            pick.append(rng.choice(rows, n, replace=n > len(rows)))
    return train[np.concatenate(pick) if pick else np.zeros(0, int)]


# --- count realism --------------------------------------------------------------------------------------


def count_stats(adata) -> pd.DataFrame:
    """Per-gene mean, variance and fraction of zeros of the counts."""
    import scipy.sparse as sp

    x = sp.csr_matrix(adata.X, dtype=np.float64)
    n = max(1, x.shape[0])
    mean = np.asarray(x.sum(0)).ravel() / n  # sums, not .mean(): no ZeroDivisionError on 0 cells
    var = np.asarray(x.multiply(x).sum(0)).ravel() / n - mean**2
    zeros = 1.0 - np.asarray((x > 0).sum(0)).ravel() / n
    return pd.DataFrame({"gene": list(adata.var_names), "mean": mean, "var": np.maximum(var, 0), "zero_frac": zeros})
