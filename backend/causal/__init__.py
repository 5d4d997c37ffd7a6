"""Causal page back end: diffusion-based causal representation learning (DCRL-style) and discovery.

Public API (kept stable; checks outside the UI call it):

    make_scm(adjacency, kind="linear", seed=0) -> SCM      # scm.sample(n, seed=..., intervene={j: v})
    counterfactual(adjacency, kind, variable, value_sd) -> Counterfactual   # the same samples under do(Z_i = v)
    run_pipeline(adjacency, kind, observation, n_pairs, learner, method, max_seconds, seed, progress) -> PipelineResult
    shd(true_adjacency, estimated) -> int
    representation(learner="dcrl", n=2000, seed=1) -> (codes, latents)   # for the Disentanglement page
    load_learner(learner="dcrl", observation="vector", directory=None) -> (model, config, card)

Method: Mamaghan, Dittadi, Bauer, Johansson, Quinzan, "Diffusion Based Causal Representation Learning",
Entropy 2024 (arXiv:2311.05421), on the weakly supervised setting of ILCM (Brehmer et al., NeurIPS 2022).
This is a CPU-sized re-implementation; its numbers are not comparable with the paper's.
"""

from backend.causal.counterfactual import Counterfactual, counterfactual, to_dot
from backend.causal.data import (
    FACTORS,
    KINDS,
    MAX_NODES,
    OBSERVATIONS,
    SCM,
    TEMPLATES,
    default_adjacency,
    descendants,
    edge_list,
    from_edge_list,
    make_scm,
    node_names,
    observe,
    render,
    template,
    validate_adjacency,
)
from backend.causal.discovery import METHODS
from backend.causal.learner import LEARNERS, load_learner, shipped_available, uses_shipped
from backend.causal.metrics import compare_edges, cpdag, dci, edge_scores, mcc, shd, sid
from backend.causal.pipeline import LABELS, PipelineResult, representation, run_pipeline

__all__ = [
    "FACTORS", "KINDS", "LABELS", "LEARNERS", "MAX_NODES", "METHODS", "OBSERVATIONS", "SCM", "TEMPLATES",
    "Counterfactual", "PipelineResult", "compare_edges", "counterfactual", "cpdag", "dci", "default_adjacency",
    "descendants", "edge_list", "edge_scores", "from_edge_list", "load_learner", "make_scm", "mcc", "node_names",
    "observe", "render", "representation", "run_pipeline", "shd", "shipped_available", "sid", "template", "to_dot",
    "uses_shipped", "validate_adjacency",
]
