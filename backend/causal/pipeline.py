"""The end-to-end pipeline: graph -> SCM -> weakly supervised pairs -> observations -> learned causal
variables -> matching to the truth (MCC, DCI) -> causal discovery (PC / GES, optionally oriented by
interventions) -> SHD/SID against the true DAG and CPDAG, with the oracle (true latents) as ceiling."""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from dataclasses import dataclass, field

import numpy as np

from backend.causal import data as D
from backend.causal import discovery as DI
from backend.causal import metrics as M
from backend.causal.analysis import Codes, dci_scores, discover_graph, learned_codes, match, oracle_codes
from backend.causal.learner import (
    DECODER,
    DEFAULT_KIND,
    DEFAULT_SCM_SEED,
    EVAL_SEED,
    LEARNERS,
    N_TRAIN,
    checkpoint_name,
    default_scm,
    encode,
    is_default,
    load_learner,
    uses_shipped,
)
from backend.causal.train import train_live

LABELS = {"dcrl": "DCRL", "vae": "VAE baseline", "oracle": "oracle"}


@dataclass
class PipelineResult:
    adjacency: np.ndarray          # true DAG
    estimated: np.ndarray          # estimated graph on the learned variables, matched to the true order
    learner: str
    method: str
    use_interventions: bool
    mcc: float                     # causal variables vs true latents (Pearson, Hungarian-matched)
    shd: int                       # to the true DAG (reversal = 1)
    shd_cpdag: int                 # to the true CPDAG
    sid: int | None
    oracle_estimated: np.ndarray
    oracle_shd: int
    oracle_shd_cpdag: int
    true_cpdag: np.ndarray
    edge_scores: dict
    edges: list
    perm: np.ndarray               # learned dim perm[j] matched to true variable j
    corr: np.ndarray               # |corr(learned_i, true_j)|
    codes: np.ndarray              # learned causal variables, columns reordered to match the truth
    latents: np.ndarray            # true latents of the same samples
    mcc_spearman: float = float("nan")
    mcc_noise: float = float("nan")  # learned noise codes vs true exogenous noise
    dci: dict = field(default_factory=dict)
    target_accuracy: float = float("nan")
    n_pairs: int = 0
    shipped: bool = False          # True when the shipped checkpoint was used (no training)
    train_info: dict = field(default_factory=dict)
    timings: dict = field(default_factory=dict)
    comparison: list = field(default_factory=list)  # metrics rows of every learner on the same pairs

    def metrics(self) -> dict:
        out = {"MCC": self.mcc, "MCC (Spearman)": self.mcc_spearman, "MCC noise": self.mcc_noise,
               "DCI disentanglement": self.dci.get("disentanglement", np.nan),
               "DCI completeness": self.dci.get("completeness", np.nan),
               "DCI informativeness (R2)": self.dci.get("informativeness", np.nan),
               "intervention-target accuracy": self.target_accuracy,
               "SHD to DAG": self.shd, "SHD to CPDAG": self.shd_cpdag, "SID": self.sid,
               "oracle SHD to DAG": self.oracle_shd, "oracle SHD to CPDAG": self.oracle_shd_cpdag}
        out.update(self.edge_scores)
        return out


# ---------------------------------------------------------------- learners

_lock = threading.Lock()
_trained: OrderedDict = OrderedDict()  # in-app trained learners, a few kept


def get_learner(adjacency, kind, observation, learner, n_pairs, seed, scm_seed, max_seconds, progress):
    """(model, shipped?, info): the shipped checkpoint for the default setting, else train in-app."""
    if scm_seed == DEFAULT_SCM_SEED and uses_shipped(adjacency, kind, learner, observation):
        m, _, card = load_learner(learner, observation)
        return m, True, {"checkpoint": checkpoint_name(learner, observation), "steps": card.get("steps"),
                         "n_pairs": card.get("config", {}).get("n_pairs", N_TRAIN)}
    key = (tuple(map(tuple, np.asarray(adjacency).tolist())), kind, observation, learner, int(n_pairs), int(seed),
           int(scm_seed), float(max_seconds))
    with _lock:
        if key in _trained:
            _trained.move_to_end(key)
            return _trained[key]
    scm = D.make_scm(adjacency, kind, seed=scm_seed)
    model, info = train_live(scm, observation, DECODER[learner], n_pairs=n_pairs, seed=seed,
                             max_seconds=max_seconds, progress=progress)
    out = (model, False, info)
    with _lock:
        _trained[key] = out
        while len(_trained) > 4:
            _trained.popitem(last=False)
    return out


# ---------------------------------------------------------------- pipeline


def check_settings(learner, observation, method, alpha, n_pairs, max_seconds) -> int:
    """ValueError with the fix for a bad setting; returns n_pairs as an int."""
    if learner not in LEARNERS:
        raise ValueError(f"Unknown learner {learner!r}: choose one of {', '.join(LEARNERS)}.")
    if observation not in D.OBSERVATIONS:
        raise ValueError(f"Unknown observation {observation!r}: choose 'vector' or 'image'.")
    if method not in DI.METHODS:
        raise ValueError(f"Unknown discovery method {method!r}: choose one of {', '.join(DI.METHODS)}.")
    DI.check_alpha(alpha)
    n_pairs = int(n_pairs)
    if n_pairs < 10:
        raise ValueError(f"The pipeline needs at least 10 pairs (got {n_pairs}); increase the sample size.")
    if n_pairs > 50000:
        raise ValueError(f"At most 50,000 pairs are supported (got {n_pairs}).")
    if not max_seconds or max_seconds <= 0:
        raise ValueError("The time budget must be positive.")
    return n_pairs


def run_pipeline(adjacency=None, kind: str = "linear", observation: str = "vector", n_pairs: int = 5000,
                 learner: str = "dcrl", method: str = "pc", max_seconds: float = 180, seed: int = 0,
                 progress=None, alpha: float = 0.001, use_interventions: bool = False, scm_seed: int = 0,
                 with_dci: bool = True, compare: bool = False) -> PipelineResult:
    """Learn causal variables from observations of pairs and discover the graph; compare with the truth.

    The shipped checkpoint is used for the default graph (linear, scm_seed 0); any other setting trains
    the learner in-app for about `max_seconds`. Evaluation uses `n_pairs` fresh pairs from unseen seeds.
    `compare`: on the default graph, also score every other shipped learner on the same pairs (no DCI).
    """
    from backend.core import as_progress

    t_start = time.time()
    a = D.validate_adjacency(D.default_adjacency() if adjacency is None else adjacency)
    n_pairs = check_settings(learner, observation, method, alpha, n_pairs, max_seconds)
    prog = as_progress(progress)
    scm = D.make_scm(a, kind, seed=scm_seed)
    prog.update(0, 4, "sampling pairs")
    test = scm.pairs(n_pairs, seed=EVAL_SEED + int(seed))
    timings, train_info, shipped = {}, {}, learner == "oracle"
    if learner == "oracle":
        codes = oracle_codes(test)
    else:
        t = time.time()
        model, shipped, train_info = get_learner(a, kind, observation, learner, n_pairs, seed, scm_seed,
                                                 max_seconds, progress)
        timings["learner_s"] = time.time() - t
        prog.update(1, 4, "encoding observations")
        codes = learned_codes(model, scm, test, observation)
    prog.update(2, 4, "matching learned and true variables and discovering the graph")
    res = score(a, scm, test, codes, learner, method, alpha, use_interventions, with_dci, seed)
    res.shipped, res.train_info, res.timings = shipped, train_info, {**timings, **res.timings}
    if compare and is_default(a, kind, scm_seed):
        res.comparison = compare_learners(res, scm, test, observation, method, alpha, use_interventions, seed)
    res.timings["total_s"] = time.time() - t_start
    prog.update(4, 4, "done")
    return res


def score(a, scm, test, codes: Codes, learner, method, alpha, use_interventions, with_dci, seed) -> PipelineResult:
    """Every score of one learner's codes on the held-out pairs."""
    z1, z2, targets = test["z"], test["z_tilde"], test["target"]
    t = time.time()
    m = match(codes, z1)
    dci = dci_scores(codes.c1, z1, 1500, seed=seed) if with_dci else {}
    timings = {"dci_s": time.time() - t} if with_dci else {}
    t = time.time()
    est = discover_graph(m.c1, m.c2, m.targets, method, alpha, use_interventions)
    timings["discovery_s"] = time.time() - t
    oracle = discover_graph(z1, z2, targets, method, alpha, use_interventions)
    true_cp = M.cpdag(a)
    return PipelineResult(
        adjacency=a, estimated=est, learner=learner, method=method, use_interventions=bool(use_interventions),
        mcc=m.mcc, shd=M.shd(a, est), shd_cpdag=M.shd(true_cp, est), sid=M.sid(a, est),
        oracle_estimated=oracle, oracle_shd=M.shd(a, oracle), oracle_shd_cpdag=M.shd(true_cp, oracle),
        true_cpdag=true_cp, edge_scores=M.edge_scores(a, est), edges=M.compare_edges(a, est), perm=m.perm,
        corr=M.correlation_matrix(codes.c1, z1), codes=m.c1, latents=z1,
        mcc_spearman=M.mcc(codes.c1, z1, "spearman")[0],
        mcc_noise=M.mcc(codes.noise, test["eps"])[0] if codes.noise is not None else float("nan"),
        dci=dci, target_accuracy=float(np.mean(m.targets == targets)) if learner != "oracle" else float("nan"),
        n_pairs=len(z1), timings=timings)


def compare_learners(res: PipelineResult, scm, test, observation, method, alpha, use_interventions, seed) -> list:
    """Rows {learner, metrics...} of the chosen learner and every other shipped one (and the oracle)."""
    rows = []
    for ln in LEARNERS:
        r = res
        if ln != res.learner:
            if not uses_shipped(res.adjacency, DEFAULT_KIND, ln, observation):
                continue
            codes = oracle_codes(test) if ln == "oracle" else learned_codes(load_learner(ln, observation)[0], scm,
                                                                            test, observation)
            r = score(res.adjacency, scm, test, codes, ln, method, alpha, use_interventions, False, seed)
        rows.append({"learner": LABELS[ln], **{k: (round(v, 3) if isinstance(v, float) else v)
                                               for k, v in r.metrics().items()}})
    return rows


def representation(learner: str = "dcrl", n: int = 2000, seed: int = 1, observation: str = "vector"):
    """(codes, latents): the shipped learner's causal codes (float (n,d)) on fresh observational samples of
    the default graph, and the true latents (float (n,d)). learner in ("dcrl", "vae", "oracle")."""
    if learner not in LEARNERS:
        raise ValueError(f"Unknown learner {learner!r}: choose one of {', '.join(LEARNERS)}.")
    n = int(n)
    if n < 1:
        raise ValueError(f"n must be at least 1 (got {n}).")
    scm = default_scm()
    z = scm.sample(n, seed=[EVAL_SEED, 7, int(seed)])
    if learner == "oracle":
        return z.copy(), z
    model, _, _ = load_learner(learner, observation)
    _, c = encode(model, D.observe(z, scm, observation), observation)
    return c, z
