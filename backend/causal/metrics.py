"""Graph and representation metrics: SHD (reversal = 1), edge precision/recall, SID, MCC, DCI.

SHD follows causal-learn's convention (a node pair counts once when its edge marks differ: missing,
extra, reversed, or directed vs undirected). MCC is the mean |Pearson correlation| after Hungarian
matching (icebeem's `mean_corr_coef`). DCI uses random-forest (Gini) importances as DCI-ES's tree probes,
importance-weighted D and C (Eastwood & Williams 2018) and test R^2 as informativeness.
"""

from __future__ import annotations

import numpy as np


def _adj(a) -> np.ndarray:
    a = np.asarray(a)
    if a.ndim != 2 or a.shape[0] != a.shape[1]:
        raise ValueError(f"An adjacency matrix must be square (got shape {a.shape}).")
    return (a != 0).astype(int)


def shd(true_adjacency, estimated) -> int:
    """Structural Hamming distance: node pairs whose edge differs (a reversed edge counts once).

    Matrices are 0/1 with A[i,j]=1 for i -> j; an undirected edge has A[i,j]=A[j,i]=1.
    """
    t, e = _adj(true_adjacency), _adj(estimated)
    if t.shape != e.shape:
        raise ValueError(f"Graphs of different sizes cannot be compared ({t.shape[0]} vs {e.shape[0]} nodes).")
    iu = np.triu_indices(t.shape[0], 1)
    return int(np.sum((t[iu] != e[iu]) | (t.T[iu] != e.T[iu])))


def skeleton(a) -> np.ndarray:
    a = _adj(a)
    return ((a + a.T) > 0).astype(int)


def edge_scores(true_adjacency, estimated) -> dict:
    """Adjacency precision/recall (skeleton) and arrow precision/recall (directed marks)."""
    t, e = _adj(true_adjacency), _adj(estimated)
    st_, se = np.triu(skeleton(t), 1), np.triu(skeleton(e), 1)
    tp = int((st_ & se).sum())
    out = {"adj_precision": tp / se.sum() if se.sum() else 1.0, "adj_recall": tp / st_.sum() if st_.sum() else 1.0}
    ed = e * (1 - e.T)  # directed edges of the estimate
    tpa = int((ed & t).sum())
    out["arrow_precision"] = tpa / ed.sum() if ed.sum() else 1.0
    out["arrow_recall"] = tpa / t.sum() if t.sum() else 1.0
    return {k: float(v) for k, v in out.items()}


def compare_edges(true_adjacency, estimated) -> list[dict]:
    """Every edge of either graph with its status: correct, reversed, undirected, extra or missing."""
    t, e = _adj(true_adjacency), _adj(estimated)
    d = t.shape[0]
    rows = []
    for i in range(d):
        for j in range(i + 1, d):
            ti, tj, ei, ej = t[i, j], t[j, i], e[i, j], e[j, i]
            if not (ti or tj or ei or ej):
                continue
            if ti or tj:
                src, dst = (i, j) if ti else (j, i)
                if ei and ej:
                    status = "undirected"
                elif not (ei or ej):
                    status = "missing"
                elif (ei and ti) or (ej and tj):
                    status = "correct"
                else:
                    status = "reversed"
            else:
                src, dst = i, j
                status = "extra" if not (ei and ej) else "extra"
                if ej and not ei:
                    src, dst = j, i
            rows.append({"from": src, "to": dst, "status": status,
                         "estimated_undirected": bool(ei and ej)})
    return rows


def cpdag(adjacency) -> np.ndarray:
    """The CPDAG (Markov equivalence class) of a DAG, as a 0/1 matrix with undirected edges symmetric."""
    from causallearn.graph.Dag import Dag
    from causallearn.graph.GraphNode import GraphNode
    from causallearn.utils.DAG2CPDAG import dag2cpdag

    a = _adj(adjacency)
    d = a.shape[0]
    nodes = [GraphNode(f"X{i + 1}") for i in range(d)]
    dag = Dag(nodes)
    for i, j in zip(*np.nonzero(a)):
        dag.add_directed_edge(nodes[i], nodes[j])
    g = dag2cpdag(dag).graph  # causal-learn: i -> j iff g[j,i] == 1 and g[i,j] == -1; undirected: both -1
    return causallearn_to_adjacency(g)


def causallearn_to_adjacency(g: np.ndarray) -> np.ndarray:
    """causal-learn endpoint matrix -> 0/1 adjacency (undirected and bidirected edges symmetric)."""
    g = np.asarray(g)
    d = g.shape[0]
    a = np.zeros((d, d), int)
    for i in range(d):
        for j in range(d):
            if i == j:
                continue
            if g[j, i] == 1 and g[i, j] == -1:
                a[i, j] = 1
            elif g[i, j] == -1 and g[j, i] == -1 or g[i, j] == 1 and g[j, i] == 1:
                a[i, j] = a[j, i] = 1
            elif (g[i, j] == 2 or g[j, i] == 2) and g[i, j] != 0 and g[j, i] != 0:  # PAG circle marks: undirected
                a[i, j] = a[j, i] = 1
    return a


def sid(true_adjacency, estimated) -> int | None:
    """Structural intervention distance (gadjid); parent-AID when the estimate has undirected edges."""
    import os

    os.environ.setdefault("RAYON_NUM_THREADS", "1")
    import gadjid

    t, e = _adj(true_adjacency).astype(np.int8), _adj(estimated)
    und = e & e.T
    g = (e * (1 - und)).astype(np.int8) + 2 * np.triu(und, 1).astype(np.int8)
    try:
        if und.any():
            return int(gadjid.parent_aid(t, g, edge_direction="from row to column")[1])
        return int(gadjid.sid(t, g, edge_direction="from row to column")[1])
    except Exception:  # gadjid rejects cyclic guesses (possible when orienting by interventions)
        return None


def correlation_matrix(codes, latents, method: str = "pearson") -> np.ndarray:
    """|corr(code_i, latent_j)|, shape (n_codes, n_latents)."""
    c, z = np.asarray(codes, float), np.asarray(latents, float)
    if method == "spearman":
        from scipy.stats import rankdata

        c, z = np.apply_along_axis(rankdata, 0, c), np.apply_along_axis(rankdata, 0, z)
    c = (c - c.mean(0)) / (c.std(0) + 1e-12)
    z = (z - z.mean(0)) / (z.std(0) + 1e-12)
    return np.abs(c.T @ z / len(c))


def mcc(codes, latents, method: str = "pearson") -> tuple[float, np.ndarray]:
    """Mean correlation coefficient after Hungarian matching; returns (mcc, perm) with codes[:, perm[j]]
    matched to latents[:, j] (perm[j] = -1 when a latent has no code)."""
    from scipy.optimize import linear_sum_assignment

    cm = correlation_matrix(codes, latents, method)
    rows, cols = linear_sum_assignment(cm, maximize=True)
    perm = -np.ones(cm.shape[1], int)
    perm[cols] = rows
    return float(cm[rows, cols].mean()), perm


def dci(codes, latents, seed: int = 0, n_train: int | None = None) -> dict:
    """DCI disentanglement, completeness (importance-weighted) and informativeness (mean test R^2), from one
    random-forest regressor per true factor (Gini importances, fit on the first 80%, R^2 on the rest)."""
    from sklearn.ensemble import RandomForestRegressor

    c, z = np.asarray(codes, float), np.asarray(latents, float)
    n = len(c)
    n_train = n_train or int(0.8 * n)
    L, K = c.shape[1], z.shape[1]
    r = np.zeros((L, K))
    r2 = []
    for j in range(K):
        m = RandomForestRegressor(n_estimators=20, max_depth=6, min_samples_leaf=5, random_state=seed, n_jobs=1)
        m.fit(c[:n_train], z[:n_train, j])
        r[:, j] = np.abs(m.feature_importances_)
        r2.append(m.score(c[n_train:], z[n_train:, j]))
    if r.sum() == 0:
        r = np.ones_like(r)

    def ent(p, base):
        p = p + 1e-12
        p = p / p.sum(-1, keepdims=True)
        return -(p * np.log(p)).sum(-1) / np.log(base)

    d_i = 1 - ent(r, K) if K > 1 else np.ones(L)
    c_j = 1 - ent(r.T, L) if L > 1 else np.ones(K)
    rho = r.sum(1) / r.sum()
    w = r.sum(0) / r.sum()
    return {"disentanglement": float((rho * d_i).sum()), "completeness": float((w * c_j).sum()),
            "informativeness": float(np.mean(r2)), "importance": r}


def to_general_graph(adjacency):
    """0/1 adjacency (undirected edges symmetric) -> causal-learn GeneralGraph (for its SHD and DOT tools)."""
    from causallearn.graph.Edge import Edge
    from causallearn.graph.Endpoint import Endpoint
    from causallearn.graph.GeneralGraph import GeneralGraph
    from causallearn.graph.GraphNode import GraphNode

    a = _adj(adjacency)
    d = a.shape[0]
    nodes = [GraphNode(f"X{i + 1}") for i in range(d)]
    g = GeneralGraph(nodes)
    for i in range(d):
        for j in range(d):
            if a[i, j] and not a[j, i]:
                g.add_edge(Edge(nodes[i], nodes[j], Endpoint.TAIL, Endpoint.ARROW))
            elif a[i, j] and a[j, i] and i < j:
                g.add_edge(Edge(nodes[i], nodes[j], Endpoint.TAIL, Endpoint.TAIL))
    return g
