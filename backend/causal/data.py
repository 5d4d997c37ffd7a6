"""Causal graphs, structural causal models, weakly supervised pairs and their observations.

Data model of weakly supervised causal representation learning (ILCM: Brehmer et al., NeurIPS 2022,
arXiv:2203.16437; DCRL: Mamaghan et al., Entropy 2024, arXiv:2311.05421): a latent additive-noise SCM
over d variables; a pair is a sample and the same sample after an intervention on one unknown variable
(or none), every other noise term shared, descendants recomputed. The latents are observed through a
fixed mixing: a `vector` (random orthonormal embedding into 2d dims + an invertible elementwise
nonlinearity) or a rendered 32x32 `image` (each variable drives one visual factor).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

MAX_NODES = 8
TEMPLATES = ("chain", "fork", "collider", "diamond", "random")
KINDS = ("linear", "nonlinear")
OBSERVATIONS = ("vector", "image")
IMAGE_SIZE = 32
FACTORS = ("object x", "object y", "object size", "object hue", "background brightness",
           "second object x", "second object y", "second object hue")

DEFAULT_GRAPH_SEED = 3  # the 5-node random graph the shipped learners are trained on


def node_names(d: int) -> list[str]:
    return [f"Z{i + 1}" for i in range(d)]


def template(name: str, d: int = 5, seed: int = 0, p: float = 0.5) -> np.ndarray:
    """Adjacency (int (d,d), A[i,j]=1 means i -> j) of a named graph template."""
    if name not in TEMPLATES:
        raise ValueError(f"Unknown graph template {name!r}: choose one of {', '.join(TEMPLATES)}.")
    d = int(d)
    if not 2 <= d <= MAX_NODES:
        raise ValueError(f"A graph needs between 2 and {MAX_NODES} nodes (got {d}).")
    a = np.zeros((d, d), int)
    if name == "chain":
        for i in range(d - 1):
            a[i, i + 1] = 1
    elif name == "fork":  # Z1 causes every other variable
        a[0, 1:] = 1
    elif name == "collider":  # every other variable causes the last one
        a[:-1, -1] = 1
    elif name == "diamond":
        if d < 4:
            raise ValueError("The diamond template needs at least 4 nodes.")
        a[0, 1] = a[0, 2] = a[1, 3] = a[2, 3] = 1
        for i in range(4, d):  # extra nodes hang off the sink as a chain
            a[i - 1, i] = 1
    else:  # Erdős–Rényi: upper-triangular edges with probability p, then a random node order
        rng = np.random.default_rng(seed)
        upper = np.triu(rng.random((d, d)) < p, k=1).astype(int)
        perm = rng.permutation(d)
        a = upper[np.ix_(perm, perm)]
    return a


def default_adjacency() -> np.ndarray:
    """The default graph: a 5-node random Erdős–Rényi DAG (the one the shipped learners know)."""
    return template("random", 5, seed=DEFAULT_GRAPH_SEED)


def edge_list(adjacency) -> list[str]:
    """Edges as "Zi→Zj" labels (the page's edge editor)."""
    names = node_names(len(adjacency))
    return [f"{names[i]}→{names[j]}" for i, j in zip(*np.nonzero(np.asarray(adjacency)))]


def from_edge_list(d: int, edges: list[str]) -> np.ndarray:
    """Adjacency (int (d,d)) from "Zi→Zj" labels; labels naming other nodes are ignored."""
    names = node_names(d)
    a = np.zeros((d, d), int)
    for e in edges:
        src, _, dst = e.partition("→")
        if src in names and dst in names:
            a[names.index(src), names.index(dst)] = 1
    return a


def topological_order(adjacency) -> list[int]:
    """Kahn's algorithm; ValueError naming a cycle's nodes when there is none."""
    a = np.asarray(adjacency)
    d = a.shape[0]
    indeg = a.sum(0).astype(int).tolist()
    order, ready = [], [i for i in range(d) if indeg[i] == 0]
    while ready:
        i = ready.pop(0)
        order.append(i)
        for j in np.flatnonzero(a[i]):
            indeg[j] -= 1
            if indeg[j] == 0:
                ready.append(int(j))
    if len(order) < d:
        stuck = [node_names(d)[i] for i in range(d) if i not in order]
        raise ValueError(f"The graph has a cycle through {', '.join(stuck)}: a causal graph must be acyclic; "
                         "remove one of those edges.")
    return order


def validate_adjacency(adjacency) -> np.ndarray:
    """Check a user graph: square 0/1, 2..MAX_NODES nodes, no self-loops, no cycles. Returns int array."""
    try:
        a = np.asarray(adjacency, dtype=float)
    except (TypeError, ValueError) as e:
        raise ValueError("The adjacency matrix must be a square table of 0s and 1s.") from e
    if a.ndim != 2 or a.shape[0] != a.shape[1]:
        raise ValueError(f"The adjacency matrix must be square (got shape {a.shape}).")
    d = a.shape[0]
    if d < 2:
        raise ValueError("A causal graph needs at least 2 variables; add a node.")
    if d > MAX_NODES:
        raise ValueError(f"At most {MAX_NODES} variables are supported (the image renderer has {MAX_NODES} "
                         f"visual factors); got {d}.")
    if not np.all(np.isin(a, (0, 1))):
        raise ValueError("The adjacency matrix may only contain 0 (no edge) and 1 (edge i -> j).")
    a = a.astype(int)
    if np.any(np.diag(a)):
        i = int(np.flatnonzero(np.diag(a))[0])
        raise ValueError(f"Self-loop on {node_names(d)[i]}: a variable cannot cause itself; remove it.")
    topological_order(a)
    return a


def descendants(adjacency) -> np.ndarray:
    """Bool (d,d): D[i,j] = j is a (strict) descendant of i."""
    a = np.asarray(adjacency).astype(bool)
    reach = a.copy()
    for _ in range(a.shape[0]):
        new = reach | ((reach.astype(int) @ a.astype(int)) > 0)
        if np.array_equal(new, reach):
            break
        reach = new
    return reach


@dataclass
class SCM:
    """Additive-noise SCM z_j = f_j(z_pa(j)) + eps_j, eps ~ N(0,1); interventions set z_i := value."""

    adjacency: np.ndarray
    kind: str
    seed: int
    weights: np.ndarray                      # (d,d) linear weights, or effective slopes when nonlinear
    order: list[int]
    mlp: dict = field(default_factory=dict)  # j -> (W1 (h,|pa|), b1 (h,), w2 (h,)) for nonlinear mechanisms
    scale: np.ndarray | None = None          # observational std of each z (for rendering / mixing)

    @property
    def d(self) -> int:
        return self.adjacency.shape[0]

    def mechanism(self, j: int, z: np.ndarray) -> np.ndarray:
        pa = np.flatnonzero(self.adjacency[:, j])
        if len(pa) == 0:
            return np.zeros(len(z))
        if self.kind == "linear":
            return z[:, pa] @ self.weights[pa, j]
        w1, b1, w2 = self.mlp[j]
        return np.tanh(z[:, pa] @ w1.T + b1) @ w2

    def solve(self, eps: np.ndarray, intervene: dict | None = None) -> np.ndarray:
        """Latents from noise in topological order; `intervene` {i: values} cuts i's incoming edges."""
        eps = np.asarray(eps, float)
        z = np.zeros_like(eps)
        intervene = intervene or {}
        for j in self.order:
            if j in intervene:
                z[:, j] = intervene[j]
            else:
                z[:, j] = self.mechanism(j, z) + eps[:, j]
        return z

    def sample(self, n: int, seed: int = 0, intervene: dict | None = None) -> np.ndarray:
        """n samples of the latents (float (n,d)); `intervene={j: value}` samples under do(Z_j = value)."""
        n = _check_n(n)
        rng = np.random.default_rng(seed)
        eps = rng.standard_normal((n, self.d))
        iv = {}
        for j, v in (intervene or {}).items():
            if not 0 <= int(j) < self.d:
                raise ValueError(f"Cannot intervene on variable {j}: the graph has {self.d} variables.")
            iv[int(j)] = np.broadcast_to(np.asarray(v, float), (n,)).copy()
        return self.solve(eps, iv)

    def pairs(self, n: int, seed: int = 0) -> dict:
        """n weakly supervised pairs: z, z_tilde (after do(Z_I ~ N(0,1)) on a uniform target I or none)
        with shared noise; `target` is -1 for no intervention. Also the true noise eps, eps_tilde where
        eps_tilde_I is the noise value that reproduces z_tilde_I under the observational mechanism."""
        n = _check_n(n)
        rng = np.random.default_rng(seed)
        eps = rng.standard_normal((n, self.d))
        target = rng.integers(-1, self.d, size=n)
        new = rng.standard_normal(n)
        z = self.solve(eps)
        z2 = np.zeros_like(z)
        eps2 = eps.copy()
        for j in self.order:
            m = self.mechanism(j, z2)
            hit = target == j
            z2[:, j] = np.where(hit, new, m + eps[:, j])
            eps2[hit, j] = new[hit] - m[hit]
        return {"z": z, "z_tilde": z2, "target": target, "eps": eps, "eps_tilde": eps2}


def _check_n(n) -> int:
    n = int(n)
    if n < 1:
        raise ValueError(f"The number of samples must be at least 1 (got {n}).")
    return n


def make_scm(adjacency, kind: str = "linear", seed: int = 0) -> SCM:
    """A random SCM on the graph: bimodal linear weights sign(N)(1+0.3N) as in ILCM, or small tanh MLPs."""
    a = validate_adjacency(adjacency)
    if kind not in KINDS:
        raise ValueError(f"Unknown mechanism kind {kind!r}: choose 'linear' or 'nonlinear'.")
    d = a.shape[0]
    rng = np.random.default_rng([int(seed), 7919])
    order = topological_order(a)
    nrm = rng.standard_normal((d, d))
    w = np.sign(nrm) * (1 + 0.3 * rng.standard_normal((d, d))) * a
    scm = SCM(a, kind, int(seed), w, order)
    if kind == "nonlinear":
        for j in range(d):
            pa = np.flatnonzero(a[:, j])
            if len(pa):
                h = 8
                w1 = rng.standard_normal((h, len(pa))) * 1.5
                b1 = rng.standard_normal(h) * 0.5
                w2 = rng.standard_normal(h) * 1.5 / np.sqrt(h)
                scm.mlp[j] = (w1, b1, w2)
    ref = scm.sample(4000, seed=[int(seed), 1])
    scm.scale = ref.std(0) + 1e-6
    if kind == "nonlinear":  # effective edge strength: least-squares slope of the mechanism on each parent
        slopes = np.zeros((d, d))
        for j in range(d):
            pa = np.flatnonzero(a[:, j])
            if len(pa):
                f = scm.mechanism(j, ref)
                x = np.c_[ref[:, pa], np.ones(len(ref))]
                slopes[pa, j] = np.linalg.lstsq(x, f, rcond=None)[0][:-1]
        scm.weights = slopes
    return scm


# ---------------------------------------------------------------- observations


def mixing(d: int, seed: int = 0) -> np.ndarray:
    """A fixed random (2d, d) matrix with orthonormal columns (the `vector` observation's embedding)."""
    rng = np.random.default_rng([int(seed), 104729, d])
    q, r = np.linalg.qr(rng.standard_normal((2 * d, 2 * d)))
    q = q * np.sign(np.diag(r))
    return q[:, :d]


def observe_vector(z: np.ndarray, scale: np.ndarray, seed: int = 0) -> np.ndarray:
    """x = h(M z/s): orthonormal embedding into 2d dims, then the invertible h(u) = u + 0.5 tanh(u)."""
    z = np.asarray(z, float)
    u = (z / scale) @ mixing(z.shape[1], seed).T
    return (u + 0.5 * np.tanh(u)).astype(np.float32)


def factor_values(z: np.ndarray, scale: np.ndarray) -> np.ndarray:
    """Map standardised latents to [0,1] visual factor values (a logistic squashing)."""
    return 1.0 / (1.0 + np.exp(-1.6 * np.asarray(z, float) / scale))


def render(z: np.ndarray, scale: np.ndarray, size: int = IMAGE_SIZE) -> np.ndarray:
    """Render latents (n,d) as uint8 scenes (n,size,size,3); variable i drives visual factor FACTORS[i].

    Unused factors (d < 8) stay at their middle value. Edges are anti-aliased so that every small change
    of a variable changes pixels.
    """
    z = np.atleast_2d(np.asarray(z, float))
    n, d = z.shape
    if d > MAX_NODES:
        raise ValueError(f"The renderer supports at most {MAX_NODES} variables (got {d}).")
    f = np.full((n, MAX_NODES), 0.5)
    f[:, :d] = factor_values(z, np.asarray(scale)[:d])
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32) + 0.5
    bg = (0.15 + 0.6 * f[:, 4])[:, None, None, None] * np.array([0.55, 0.6, 0.75], np.float32)
    img = np.broadcast_to(bg, (n, size, size, 3)).astype(np.float32).copy()

    def disk(cx, cy, r, rgb, square=False):
        dx = xx[None] - cx[:, None, None]
        dy = yy[None] - cy[:, None, None]
        dist = np.maximum(np.abs(dx), np.abs(dy)) if square else np.sqrt(dx * dx + dy * dy)
        alpha = np.clip(r[:, None, None] - dist + 0.5, 0, 1)[..., None]
        img[:] = img * (1 - alpha) + alpha * rgb[:, None, None, :]

    s = size / 32.0
    # second object (square) first, so the main object is drawn on top
    disk(s * (5 + 22 * f[:, 5]), s * (5 + 22 * f[:, 6]), np.full(n, 3.5 * s), _hue(f[:, 7] * 0.5 + 0.45), square=True)
    disk(s * (6 + 20 * f[:, 0]), s * (6 + 20 * f[:, 1]), s * (2.5 + 4.5 * f[:, 2]), _hue(f[:, 3] * 0.6))
    return (np.clip(img, 0, 1) * 255).round().astype(np.uint8)


def _hue(h: np.ndarray) -> np.ndarray:
    """Fully saturated colours for hues h in [0,1] (n,3)."""
    k = (np.asarray(h)[:, None] * 6 + np.array([5.0, 3.0, 1.0])) % 6
    return 1 - np.clip(np.minimum(k, 4 - k), 0, 1)


def observe(z: np.ndarray, scm: SCM, observation: str = "vector") -> np.ndarray:
    """Observations of latents: float32 (n, 2d) vectors, or uint8 (n,32,32,3) images."""
    if observation == "vector":
        return observe_vector(z, scm.scale, seed=scm.seed)
    if observation == "image":
        return render(z, scm.scale)
    raise ValueError(f"Unknown observation {observation!r}: choose 'vector' or 'image'.")
