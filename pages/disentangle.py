"""Disentanglement: score representations with DCI-ES (D, C, I, E, S) and compare them side by side."""

from __future__ import annotations

import plotly.express as px
import plotly.graph_objects as go
import streamlit as st

from backend.disentangle import (
    AXIS,
    DEFAULT_CAPACITIES,
    PROBES,
    UPLOAD,
    ResultStore,
    available_sources,
    compare,
    example_csv,
    read_upload,
)
from ui.common import header, running, show_error, was_cancelled
from ui.state import url_state

PAGE = "disentangle"

header(
    "Disentanglement (DCI-ES)",
    "How well does a representation capture known factors of variation? Pick representations (toy codes, "
    "the other pages' learned codes, or your own file) and compare their **disentanglement D, completeness C, "
    "informativeness I, explicitness E and size S**.",
    "Eastwood, Nicolicioiu, von Kügelgen, Kekić, Träuble, Dittadi, Schölkopf: DCI-ES: An Extended "
    "Disentanglement Framework with Connections to Identifiability (ICLR 2023)",
    "https://arxiv.org/abs/2210.00364",
    r"""
1. **Probes.** For each factor $z_j$ a probe (forest, boosted trees, linear, MLP) is trained to predict it from
   the code $c$ on 70% of the samples and tested on the other 30%, at every capacity of a grid (tree depth,
   or #parameters). This gives the *importance matrix* $R_{ij}$ = how much code $c_i$ is used for $z_j$.
2. **D and C** (Eastwood & Williams 2018): with $P_{ij}=R_{ij}/\sum_k R_{ik}$,
   $D=\sum_i \rho_i\,(1-H_K(P_{i\cdot}))$, $\rho_i=\sum_j R_{ij}/\sum R$: each code should serve one factor.
   With $\tilde P_{ij}=R_{ij}/\sum_k R_{kj}$, $C=\sum_j w_j\,(1-H_L(\tilde P_{\cdot j}))$, $w_j$ the factor's share
   of importance (DCI-ES, disentanglement_lib; the unweighted mean of Eastwood & Williams is shown as *C_mean*).
3. **I** = mean over factors of the test $R^2$ (continuous) or accuracy (discrete) at the best capacity.
4. **E** (explicitness): loss $\ell_j(\kappa)=1-R^2$ or $1-$accuracy over capacity $\kappa$, made non-increasing;
   $E_j = 1-\mathrm{AULCC}_j/Z_j$, the area above the curve's minimum over the triangle
   $Z_j=\tfrac12(\kappa_{max}-\kappa_1)\,b_j$, $b_j$ the best constant predictor's loss (1, or $1-$ majority
   share). $E=1$: the best loss is reached at the smallest capacity; $E\to-1$: only at the largest.
5. **S** (size) $=K/L$, factors over code dimensions (DCI-ES §4; the official code does not compute S, and
   this reading is not yet checked against the paper's equation): 1 for a compact code, 0.5 for a doubled one.

Caveats: E is relative to each curve's *own* best loss, so a flat but poor curve scores high E; read E next to
I (and see *E_strict*, the area taken above zero loss). Tree probes are blind to monotone element-wise
transforms, so use the linear or MLP probe to see E drop for the *elementwise* toy code. D and C mean little
when I ≈ 0. Capacity is chosen on the test split, as the DCI-ES scripts do.
""",
)

DEFAULTS = {"sources": ["toy:identity", "toy:rotation", "toy:missing", "toy:noise"], "probe": "rf", "n": 2000,
            "k": 4, "seed": 0, "focus": "toy:identity"}
s = url_state(PAGE, DEFAULTS, {"probe": list(PROBES), "n": [500, 1000, 2000, 5000], "k": (2, 10), "seed": (0, 10_000)})


@st.cache_resource(show_spinner=False)
def result_store() -> ResultStore:
    """Process-wide results, keyed by (source, probe, n, k, seed)."""
    return ResultStore(64)


def upload_section(sources: dict):
    """The uploader; a new valid file joins the comparison and becomes the focus. Returns the Upload or None."""
    with st.expander("Upload your own codes and factors (CSV or NPZ)", expanded=False):
        st.markdown(
            "**CSV**: one header row; columns named `factor…`, `z_…` or `z1, z2, …` are the factors, every other "
            "column is a code dimension. **NPZ**: arrays `codes` (N, L) and `factors` (N, K), optionally "
            "`discrete` (K,) booleans and `factor_names`. Integer factors with ≤ 50 values are treated as discrete."
        )
        file = st.file_uploader("Codes + factors", type=["csv", "npz"], key=f"{PAGE}.file")
        st.download_button("Example CSV (rotated code, 500 rows)", example_csv(), "dci_example.csv", "text/csv",
                           key=f"{PAGE}.example")
    if file is None:
        return None
    try:
        upload = read_upload(file.getvalue(), file.name)
    except ValueError as e:
        show_error(e, file.name)
        return None
    sources[UPLOAD] = upload.name
    if st.session_state.get(f"{PAGE}._last_upload") != upload.digest:
        st.session_state[f"{PAGE}._last_upload"] = upload.digest
        if UPLOAD not in s["sources"]:
            s["sources"] = [*s["sources"], UPLOAD]
        s["focus"] = UPLOAD
    return upload


def controls_section(sources: dict) -> list:
    """Representations, probe, samples, factors, seed; returns the chosen source keys."""
    s["sources"] = [key for key in s["sources"] if key in sources]
    st.multiselect("Representations", list(sources), key=s.key("sources"), format_func=lambda key: sources.get(key, key),
                   help="Toy codes show what each score means; Causal/Slots come from those pages' models.")
    c2, c3, c4, c5 = st.columns([2, 1.5, 1, 1])
    c2.selectbox("Probe", list(PROBES), key=s.key("probe"), format_func=PROBES.get,
                 help="Random forest: DCI-ES's tree probe (fast, blind to monotone transforms). "
                      "Lasso + random features and the MLP show how much capacity a factor needs.")
    c3.select_slider("Samples", [500, 1000, 2000, 5000], key=s.key("n"),
                     help="Samples per toy code or Causal learner (the Slots source always uses 300 held-out scenes).")
    c4.number_input("Factors", min_value=2, max_value=10, step=1, key=s.key("k"), help="Factors of the toy codes.")
    c5.number_input("Seed", min_value=0, max_value=10_000, step=1, key=s.key("seed"))
    chosen = list(s["sources"])
    if chosen and s["focus"] not in chosen:
        s["focus"] = chosen[0]
    s.sync()
    st.caption(f"Capacity grid of the {s['probe']} probe ({AXIS[s['probe']]}): {DEFAULT_CAPACITIES[s['probe']]}. "
               f"[Link to these settings]({s.link()})")
    return chosen


def scores(chosen: list, upload):
    """The comparison: scored at once when every source is known, else under a progress box with Cancel."""
    settings = {"probe": s["probe"], "n": int(s["n"]), "k": int(s["k"]), "seed": int(s["seed"]), "upload": upload,
                "store": result_store()}
    cmp = compare(chosen, compute=False, **settings)
    if cmp.pending and not was_cancelled(f"{PAGE}.cancel"):
        with running(f"Scoring {len(cmp.pending)} representation(s) with the {s['probe']} probe", f"{PAGE}.cancel") as p:
            cmp = compare(chosen, progress=p, **settings)
        for message in cmp.errors:  # outside the status box, which collapses when done
            show_error(message)
        if cmp.pending and not cmp.errors:  # cancelled: show what was scored
            cmp = compare(chosen, compute=False, **settings)
    return cmp


def picture_section(cmp):
    """The focused representation's importance matrix and loss-capacity curves; returns its name."""
    focus_names = {cmp.sources[name]: name for name in cmp.results}
    if s["focus"] not in focus_names:
        if s["focus"] == UPLOAD:
            st.warning(f"Your file is not shown (see the error above); showing {next(iter(focus_names.values()))}.")
        s["focus"] = next(iter(focus_names))
    st.selectbox("Inspect", list(focus_names), key=s.key("focus"), format_func=lambda key: focus_names.get(key, key))
    s.sync()
    focus = focus_names[s["focus"]]
    r = cmp.results[focus]
    st.caption(f"**{focus}**: {cmp.notes[focus]}. Probe trained on {r.n_train} samples, tested on {r.n_test}.")
    left, right = st.columns(2)
    fig = px.imshow(r.importance_frame(), color_continuous_scale="Blues", aspect="auto", text_auto=".2f",
                    labels={"x": "factor", "y": "code", "color": "importance"})
    fig.update_layout(title=f"Importance matrix R: D = {r.D:.2f}, C = {r.C:.2f}",
                      height=max(320, 40 * len(r.code_names) + 140), margin={"t": 60, "b": 10})
    left.plotly_chart(fig, width="stretch", key=f"{PAGE}.heatmap")
    fig = go.Figure()
    envelopes = r.running_curves()
    for j, (fname, (x, y)) in enumerate(r.curves.items()):
        color = px.colors.qualitative.Plotly[j % 10]
        fig.add_trace(go.Scatter(x=x, y=y, mode="markers", name=f"{fname} (test loss)", marker={"color": color},
                                 legendgroup=fname, showlegend=False))
        fig.add_trace(go.Scatter(x=x, y=envelopes[fname][1], mode="lines", name=fname, line={"color": color},
                                 legendgroup=fname))
    fig.update_layout(title=f"Loss-capacity curves, E = {r.E:.2f} (I = {r.I:.2f})", xaxis_title=r.axis,
                      yaxis_title="test loss (1 − R² or 1 − accuracy)", yaxis_range=[-0.03, 1.03], height=420,
                      margin={"t": 60, "b": 10})
    right.plotly_chart(fig, width="stretch", key=f"{PAGE}.curves")
    return focus


def numbers_section(cmp, focus: str):
    """The scores of every representation beside each other, the focus's per-factor table, downloads."""
    st.subheader("Scores")
    r = cmp.results[focus]
    for col, metric in zip(st.columns(5), ["D", "C", "I", "E", "S"]):
        col.metric(metric, f"{getattr(r, metric):.2f}", help=f"for {focus}")
    st.dataframe(cmp.scores, hide_index=True, width="stretch",
                 column_config={"C_mean": st.column_config.NumberColumn(help="unweighted mean of per-factor C (qedr)"),
                                "E_strict": st.column_config.NumberColumn(
                                    help="E with the area above zero loss: a flat but poor curve scores low")})
    bars = cmp.bars()
    fig = px.bar(bars, x="score", y="value", color="representation", barmode="group",
                 range_y=[min(0.0, float(bars["value"].min())) - 0.05, 1.05])
    fig.update_layout(height=360, margin={"t": 20, "b": 10}, legend_title_text="")
    st.plotly_chart(fig, width="stretch", key=f"{PAGE}.bars")
    st.caption("Read E next to I: E measures how little capacity reaches the curve's own best loss, so a code that "
               "is never informative can still score a high E (see *noise*: I ≈ 0, E = 1, E_strict = −1).")
    st.subheader(f"Per factor: {focus}")
    st.dataframe(r.per_factor.reset_index().round(4), hide_index=True, width="stretch")
    with st.expander("Per code dimension (D_i and its weight ρ_i)"):
        st.dataframe(r.per_code.reset_index().round(4), hide_index=True, width="stretch")
    d1, d2 = st.columns(2)
    d1.download_button("Download all scores (CSV)", cmp.csv(), "dci_es_scores.csv", "text/csv", key=f"{PAGE}.download")
    d2.download_button("Download per-factor table (CSV)", cmp.factors_csv(), "dci_es_factors.csv", "text/csv",
                       key=f"{PAGE}.download_factors")
    if s["probe"] in ("rf", "gbt") and "toy:elementwise" in cmp.sources.values():
        st.caption("Tree probes split on thresholds, so the *elementwise* toy code looks as good as *identity* to "
                   "them; switch to the Lasso or MLP probe to see its lower E.")


source_labels = available_sources()
uploaded = upload_section(source_labels)
chosen_sources = controls_section(source_labels)
if not chosen_sources:
    st.info("Pick at least one representation above.")
    st.stop()
comparison = scores(chosen_sources, uploaded)
if not comparison.results:
    st.warning("No scores yet: change a setting to compute them.")
    st.stop()
numbers_section(comparison, picture_section(comparison))
