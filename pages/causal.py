"""Causal page: build a causal graph, watch its variables as images, learn a representation from pairs of
observations (DCRL-style diffusion encoder vs a VAE baseline vs the true latents) and discover the graph."""

from __future__ import annotations

import json

import numpy as np
import streamlit as st

from backend.causal import (
    FACTORS,
    KINDS,
    LABELS,
    LEARNERS,
    MAX_NODES,
    METHODS,
    OBSERVATIONS,
    TEMPLATES,
    counterfactual,
    default_adjacency,
    edge_list,
    from_edge_list,
    node_names,
    run_pipeline,
    template,
    to_dot,
    uses_shipped,
    validate_adjacency,
)
from ui.common import header, running, show_error
from ui.state import url_state

header(
    "Causal representation learning",
    "Edit a causal graph over a few latent variables, see them rendered as images, learn the variables back "
    "from weakly supervised pairs of observations and discover the graph on what was learned.",
    "Mamaghan, Dittadi, Bauer, Johansson, Quinzan: Diffusion Based Causal Representation Learning (Entropy 2024)",
    "https://arxiv.org/abs/2311.05421",
    """
1. **Data.** A linear or nonlinear additive-noise SCM over the graph. A *pair* is a sample and the same sample after
   do(Z_i ~ N(0,1)) on one unknown variable (or none); the other noise terms are shared, so only descendants change.
2. **Observations.** The latents mixed into a 2d-dim vector (orthonormal embedding + u + 0.5 tanh u) or rendered
   as a 32x32 scene, one visual factor per variable.
3. **Learning (ILCM / DCRL).** An encoder gives noise codes e; an intervention encoder gives q(I | x, x~) over
   {none, Z1..Zd}; under hypothesis I the pair's codes share every dimension but I. Loss: ILCM's negative ELBO
   averaged over q(I), -log p(x|e) - log p(x~|e~) - log p(e, e~|I) - H(q(e, e~|I)) + KL(q(I) || uniform). The prior
   p(e, e~|I) is N(0,1) on e and gives the intervened e~_i the density of z~_i = s_i(e~_i; e_rest) ~ N(0,1), so the
   solution functions s_i (affine; z_i = s_i(e_i; e_rest) are the causal variables) train inside the ELBO.
   **DCRL**: -log p(x|e) is the continuous-time diffusion ELBO of a noise predictor conditioned on e,
   ½·20·E‖n - n̂(x_λ, λ, e)‖² with log-SNR λ ~ U[-10, 10]; the **VAE baseline** uses a Gaussian decoder; the
   **oracle** uses the true latents. No sparsity penalty (an ablation flag, off in the shipped learners).
4. **Discovery.** PC (Fisher-z) or GES (BIC) on the learned variables, optionally orienting edges by which variables
   move under the inferred interventions; compared with the truth after Hungarian matching (MCC). SHD counts a
   reversed edge once.

*DCRL-style re-implementation on CPU (no official code exists); numbers are not comparable with the paper's.*
""",
)


DEFAULTS = {"template": "random", "nodes": 5, "graph_seed": 3, "edges": edge_list(default_adjacency()),
            "kind": "linear", "observation": "vector", "learner": "dcrl", "method": "pc", "alpha": 0.01,
            "interventions": True, "n_pairs": 5000, "seed": 0, "budget": 60, "iv_var": "Z1", "iv_value": 1.5}
s = url_state("causal", DEFAULTS, {"template": TEMPLATES, "nodes": (2, MAX_NODES), "graph_seed": (0, 9999), "kind": KINDS,
                                   "observation": OBSERVATIONS, "learner": LEARNERS, "method": METHODS, "alpha": (0.0, 1.0),
                                   "n_pairs": (0, 50_000), "seed": (0, 9999), "budget": (5, 600), "iv_value": (-3.0, 3.0)})


def apply_template():
    try:
        a = template(s["template"], int(s["nodes"]), seed=int(s["graph_seed"]))
    except ValueError as e:
        st.session_state["causal._template_error"] = str(e)
        return
    st.session_state.pop("causal._template_error", None)
    s["edges"] = edge_list(a)


@st.cache_data(max_entries=16, show_spinner=False)
def cached_counterfactual(adj_key: tuple, kind: str, variable: int, value_sd: float):
    return counterfactual(np.array(adj_key), kind, variable, value_sd)


@st.cache_data(max_entries=24, show_spinner=False)
def cached_pipeline(adj_key, kind, observation, n_pairs, learner, method, alpha, interventions, seed, budget):
    return run_pipeline(np.array(adj_key), kind=kind, observation=observation, n_pairs=n_pairs, learner=learner,
                        method=method, max_seconds=budget, seed=seed, alpha=alpha, use_interventions=interventions,
                        compare=True)


def graph_section():
    """1. The graph editor and its drawing; returns the adjacency, or None when it is not a DAG."""
    st.subheader("1 · The causal graph")
    c1, c2 = st.columns([1.2, 1])
    t1, t2, t3 = c1.columns(3)
    t1.selectbox("Template", TEMPLATES, key=s.key("template"), on_change=apply_template)
    t2.number_input("Nodes", min_value=2, max_value=MAX_NODES, step=1, key=s.key("nodes"), on_change=apply_template)
    t3.number_input("Graph seed", 0, 9999, step=1, key=s.key("graph_seed"), on_change=apply_template)
    if st.session_state.get("causal._template_error"):
        c1.error(st.session_state["causal._template_error"])
    names = node_names(int(s["nodes"]))
    options = [f"{a}→{b}" for a in names for b in names if a != b]
    s["edges"] = [e for e in s["edges"] if e in options]
    c1.multiselect("Edges (cause → effect)", options, key=s.key("edges"), help="Add or remove edges; cycles are refused.")
    c1.radio("Mechanisms", KINDS, key=s.key("kind"), horizontal=True,
             help="linear Gaussian (bimodal weights, as ILCM) or nonlinear additive noise (small random MLPs)")
    adj = from_edge_list(len(names), s["edges"])
    try:
        validate_adjacency(adj)
    except ValueError as e:
        c1.error(str(e))
        c2.graphviz_chart(to_dot(adj), width="stretch")
        return None
    s["iv_var"] = s["iv_var"] if s["iv_var"] in names else names[0]
    cf = cached_counterfactual(tuple(map(tuple, adj.tolist())), s["kind"], names.index(s["iv_var"]),
                               float(s["iv_value"]))
    c2.graphviz_chart(to_dot(adj, cf.weights), width="stretch")
    c2.caption("Edge labels: linear weights (nonlinear: least-squares slope of the mechanism).")
    return adj, cf


def intervention_section(cf):
    """2. The same samples before and after do(Z = v)."""
    st.subheader("2 · Observations and interventions")
    names = cf.names
    st.caption("Each variable drives one visual factor: "
               + ", ".join(f"**{n}** → {FACTORS[i]}" for i, n in enumerate(names)) + ".")
    i1, i2 = st.columns([1, 3])
    i1.selectbox("Intervene on", names, key=s.key("iv_var"))
    i1.slider("do(Z = v), v in standard deviations", -3.0, 3.0, step=0.25, key=s.key("iv_value"))
    target = names[cf.variable]
    i2.image(cf.strip_before, caption=f"{len(cf.before)} observational samples", output_format="PNG")
    i2.image(cf.strip_after, caption=f"the same samples (same noise) under do({target} = {cf.value_sd:+.2f} sd)",
             output_format="PNG")
    st.caption(f"Under do({target}) the noise is shared: only {target} and its descendants "
               f"({', '.join(cf.moved) or 'none'}) change; every other variable keeps its value.")
    with st.expander("Latent values of the first sample, before and after the intervention"):
        st.dataframe({"variable": names, "before": cf.before[0].round(3), "after": cf.after[0].round(3),
                      "changed": cf.changed[0].tolist()}, hide_index=True)


def controls_section() -> tuple:
    """3. Learner, discovery method and sample settings; returns the request's settings."""
    st.subheader("3 · Learn & discover")
    k1, k2, k3, k4 = st.columns(4)
    k1.radio("Observation", OBSERVATIONS, key=s.key("observation"), horizontal=True)
    k1.radio("Learner", LEARNERS, key=s.key("learner"), horizontal=True,
             format_func={**LABELS, "oracle": "oracle (true latents)"}.get)
    k2.selectbox("Discovery", METHODS, key=s.key("method"), format_func={"pc": "PC (Fisher-z)", "ges": "GES (BIC)"}.get)
    k2.number_input("alpha (PC)", min_value=0.0, max_value=1.0, step=0.001, format="%.4f", key=s.key("alpha"))
    k3.checkbox("Orient edges by interventions", key=s.key("interventions"),
                help="Edges i - j become i -> j when j moves under the inferred interventions on i but not vice versa.")
    k3.number_input("Pairs (sample size)", min_value=0, max_value=50000, step=500, key=s.key("n_pairs"))
    k4.number_input("Seed", min_value=0, max_value=9999, step=1, key=s.key("seed"))
    k4.number_input("Training budget (s)", min_value=5, max_value=600, step=5, key=s.key("budget"))
    s.sync()
    st.caption("Share these settings (graph included): " + f"`{s.link()}`")
    return (s["kind"], s["observation"], int(s["n_pairs"]), s["learner"], s["method"], float(s["alpha"]),
            bool(s["interventions"]), int(s["seed"]), float(s["budget"]))


def compute(adj, settings):
    """The pipeline's result: at once from a shipped learner, else after the Train button (cached per setting)."""
    kind, observation, learner = settings[0], settings[1], settings[3]
    adj_key = tuple(map(tuple, adj.tolist()))
    shipped = uses_shipped(adj, kind, learner, observation)
    if observation == "image" and learner != "oracle":
        st.warning("No image learner is shipped: in-app image training within the budget scores far below vectors.")
    if shipped:
        st.caption("Uses the shipped checkpoint (or the true latents): runs immediately.")
    else:
        st.info("No shipped learner for this setting: it is trained here within the time budget "
                f"({int(settings[-1])} s on this machine's CPU); expect weaker results than the shipped one.")
    go = False if shipped else st.button("Train & discover", type="primary", key="causal.run")
    try:
        if shipped or st.session_state.get("causal.last") == (adj_key, settings):
            return cached_pipeline(adj_key, *settings)
        if go:
            with running(f"Training the {LABELS[learner]} learner and discovering the graph", "causal.cancel",
                         budget_s=settings[8]) as p:
                res = run_pipeline(adj, *settings[:2], n_pairs=settings[2], learner=learner, method=settings[4],
                                   alpha=settings[5], use_interventions=settings[6], seed=settings[7],
                                   max_seconds=settings[8], progress=p)
                st.session_state["causal.last"], p.steps_done = (adj_key, settings), res.train_info.get("steps_done")
                return res
    except ValueError as e:
        show_error(e)
    return None


def results_section(res):
    """4. True vs estimated graph, the scores beside the oracle's, learned vs true variables, downloads."""
    st.subheader("4 · Results")
    g1, g2 = st.columns(2)
    g1.markdown("**True graph**")
    g1.graphviz_chart(to_dot(res.adjacency), width="stretch")
    g2.markdown(f"**Estimated graph** ({LABELS[res.learner]}, {res.method.upper()}"
                f"{' + interventions' if res.use_interventions else ''})")
    g2.graphviz_chart(to_dot(res.estimated, truth=res.adjacency), width="stretch")
    st.caption("Edges: green correct · orange reversed · red extra · dashed grey missing · blue undirected "
               "(not identifiable from observational data: the CPDAG). SHD counts a reversed edge once.")
    m = st.columns(5)
    m[0].metric("MCC", f"{res.mcc:.3f}", help="mean |corr| of learned vs true variables after Hungarian matching")
    m[1].metric("SHD to DAG", res.shd, delta=f"oracle {res.oracle_shd}", delta_color="off")
    m[2].metric("SHD to CPDAG", res.shd_cpdag, delta=f"oracle {res.oracle_shd_cpdag}", delta_color="off")
    m[3].metric("DCI disentanglement", f"{res.dci.get('disentanglement', float('nan')):.3f}")
    m[4].metric("SID", "–" if res.sid is None else res.sid)
    info = res.train_info
    how = ("Shipped checkpoint." if res.shipped and res.learner != "oracle" else "Oracle." if res.shipped else
           f"Trained here for {info.get('steps_done', '?')} steps ({info.get('wall_time_s', 0):.0f} s).")
    st.caption(f"Held-out: {res.n_pairs} fresh pairs from an unseen seed. {how}")
    if res.comparison:
        st.markdown("**All learners on this graph** (shipped checkpoints, same held-out pairs; DCI only for the "
                    "selected learner, see the model cards for the others)")
        st.dataframe(res.comparison, hide_index=True)
    scatter(res)
    names = node_names(len(res.adjacency))
    out = {"nodes": names, "estimated_adjacency": res.estimated.tolist(), "true_adjacency": res.adjacency.tolist(),
           "learner": res.learner, "method": res.method, "use_interventions": res.use_interventions,
           "metrics": res.metrics(), "settings": s.values()}
    dl1, dl2 = st.columns(2)
    dl1.download_button("Estimated graph (JSON)", json.dumps(out, indent=2, default=float), "estimated_graph.json",
                        "application/json", key="causal.dl_json")
    dl2.download_button("Estimated graph (DOT)", to_dot(res.estimated), "estimated_graph.dot", "text/plain", key="causal.dl_dot")


def scatter(res):
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    names, k = node_names(len(res.adjacency)), min(600, len(res.codes))
    fig = make_subplots(rows=1, cols=len(names), subplot_titles=names)
    for j in range(len(names)):
        fig.add_trace(go.Scatter(x=res.latents[:k, j], y=res.codes[:k, j], mode="markers",
                                 marker={"size": 3, "opacity": 0.5}, showlegend=False), 1, j + 1)
    fig.update_layout(height=250, margin={"l": 10, "r": 10, "t": 30, "b": 10})
    st.markdown(f"**Each learned variable (y) against its matched true variable (x)**, {k} held-out samples")
    st.plotly_chart(fig, width="stretch", key="causal.scatter")
    st.expander("|correlation| of learned (rows) and true (columns) variables").dataframe(np.round(res.corr, 3))


graph = graph_section()
if graph is None:
    s.sync()
    st.stop()
intervention_section(graph[1])
result = compute(graph[0], controls_section())
if result is not None:
    results_section(result)
