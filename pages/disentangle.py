"""Disentanglement: score representations with DCI-ES (D, C, I, E, S) and compare them side by side."""

from __future__ import annotations

import hashlib
import threading
from collections import OrderedDict

import pandas as pd
import plotly.express as px
import plotly.graph_objects as go
import streamlit as st

from backend.disentangle import (
    AXIS,
    DEFAULT_CAPACITIES,
    PROBES,
    available_sources,
    dci_es,
    factors_frame,
    load_codes_file,
    load_source,
    running_min,
    scores_csv,
    scores_frame,
    to_csv_bytes,
    toy_codes,
)
from ui.common import header, running, show_error, was_cancelled
from ui.state import url_state

PAGE = "disentangle"
UPLOAD = "upload"

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

sources = available_sources()
DEFAULTS = {"sources": ["toy:identity", "toy:rotation", "toy:missing", "toy:noise"], "probe": "rf", "n": 2000,
            "k": 4, "seed": 0, "focus": "toy:identity"}
s = url_state(PAGE, DEFAULTS)


@st.cache_resource(show_spinner=False)
def _store():
    """Process-wide results cache keyed by (source, probe, n, k, seed); bounded, thread-safe."""
    return OrderedDict(), threading.Lock()


def _remember(key, value):
    store, lock = _store()
    with lock:
        store[key] = value
        store.move_to_end(key)
        while len(store) > 64:
            store.popitem(last=False)


def _recall(key):
    store, lock = _store()
    with lock:
        return store.get(key)


# --- upload ------------------------------------------------------------------------------------------
with st.expander("Upload your own codes and factors (CSV or NPZ)", expanded=False):
    st.markdown(
        "**CSV**: one header row; columns named `factor…`, `z_…` or `z1, z2, …` are the factors, every other "
        "column is a code dimension. **NPZ**: arrays `codes` (N, L) and `factors` (N, K), optionally "
        "`discrete` (K,) booleans and `factor_names`. Integer factors with ≤ 50 values are treated as discrete."
    )
    upload = st.file_uploader("Codes + factors", type=["csv", "npz"], key=f"{PAGE}.file")
    c_, z_, _ = toy_codes("rotation", n=500, seed=0)
    st.download_button("Example CSV (rotated code, 500 rows)", to_csv_bytes(c_, z_), "dci_example.csv", "text/csv",
                       key=f"{PAGE}.example")

uploaded = None
if upload is not None:
    raw = upload.getvalue()
    digest = hashlib.sha1(raw).hexdigest()[:16]
    try:
        codes, factors, fnames, cnames, disc = load_codes_file(raw, upload.name)
        uploaded = {"digest": digest, "codes": codes, "factors": factors, "factor_names": fnames,
                    "code_names": cnames, "discrete": disc, "name": f"Uploaded: {upload.name}"}
        sources[UPLOAD] = uploaded["name"]
        if st.session_state.get(f"{PAGE}._last_upload") != digest:  # a new file joins the comparison
            st.session_state[f"{PAGE}._last_upload"] = digest
            if UPLOAD not in s["sources"]:
                s["sources"] = [*s["sources"], UPLOAD]
            s["focus"] = UPLOAD
    except ValueError as e:
        show_error(e)

# --- controls ------------------------------------------------------------------------------------------
s["sources"] = [k for k in s["sources"] if k in sources]
st.multiselect("Representations", list(sources), key=s.key("sources"), format_func=lambda k: sources.get(k, k),
               help="Toy codes show what each score means; Causal/Slots come from those pages' models.")
c2, c3, c4, c5 = st.columns([2, 1.5, 1, 1])
c2.selectbox("Probe", list(PROBES), key=s.key("probe"), format_func=PROBES.get,
             help="Random forest: DCI-ES's tree probe (fast, blind to monotone transforms). "
                  "Lasso + random features and the MLP show how much capacity a factor needs.")
c3.select_slider("Samples", [500, 1000, 2000, 5000], key=s.key("n"), help="Samples per toy code or Causal learner (the Slots source always uses 300 held-out scenes).")
c4.number_input("Factors", min_value=2, max_value=10, step=1, key=s.key("k"), help="Factors of the toy codes.")
c5.number_input("Seed", min_value=0, max_value=10_000, step=1, key=s.key("seed"))
chosen = list(s["sources"])
if chosen and s["focus"] not in chosen:
    s["focus"] = chosen[0]
s.sync()
probe, n, k, seed = s["probe"], int(s["n"]), int(s["k"]), int(s["seed"])
st.caption(f"Capacity grid of the {probe} probe ({AXIS[probe]}): {DEFAULT_CAPACITIES[probe]}. "
           f"[Link to these settings]({s.link()})")

if not chosen:
    st.info("Pick at least one representation above.")
    st.stop()


def _key(src: str):
    if src == UPLOAD:
        return (UPLOAD, uploaded["digest"], probe, seed)
    return (src, probe, n, k if src.startswith("toy:") else 0, seed)


def _compute(src: str, progress):
    if src == UPLOAD:
        u = uploaded
        res = dci_es(u["codes"], u["factors"], discrete=u["discrete"], probe=probe, seed=seed, progress=progress,
                     factor_names=u["factor_names"], code_names=u["code_names"])
        return u["name"], res, "your uploaded file"
    rep = load_source(src, n=n, k=k, seed=seed)
    res = dci_es(rep.codes, rep.factors, discrete=rep.discrete, probe=probe, seed=seed, progress=progress,
                 factor_names=rep.factor_names)
    return rep.name, res, rep.note


todo = [src for src in chosen if _recall(_key(src)) is None]
if todo and not was_cancelled(f"{PAGE}.cancel"):
    with running(f"Scoring {len(todo)} representation(s) with the {probe} probe", f"{PAGE}.cancel") as p:
        for i, src in enumerate(todo):
            label = sources.get(src, src)

            def sub(step, total, msg, i=i, label=label):
                p.update(i * 100 + int(100 * step / max(total, 1)), len(todo) * 100, f"{label}: {msg}")

            try:
                _remember(_key(src), _compute(src, sub))
            except ValueError as e:
                st.error(f"{label}: {e}")

results, notes, keys = {}, {}, {}
for src in chosen:
    got = _recall(_key(src))
    if got is not None:
        name, res, note = got
        results[name], notes[name], keys[name] = res, note, src
if not results:
    st.warning("No scores yet: change a setting to compute them.")
    st.stop()

# --- main picture: importance matrix and loss-capacity curves of one representation ---------------------
names = list(results)
focus_names = {keys[nm]: nm for nm in names}
if s["focus"] not in focus_names:
    s["focus"] = next(iter(focus_names))
st.selectbox("Inspect", list(focus_names), key=s.key("focus"), format_func=lambda k: focus_names.get(k, k))
s.sync()
focus = focus_names.get(s["focus"], names[0])
r = results[focus]
st.caption(f"**{focus}**: {notes[focus]}. Probe trained on {r.n_train} samples, tested on {r.n_test}.")
left, right = st.columns(2)
with left:
    imp = pd.DataFrame(r.importance, index=r.code_names, columns=r.factor_names)
    fig = px.imshow(imp, color_continuous_scale="Blues", aspect="auto", text_auto=".2f",
                    labels={"x": "factor", "y": "code", "color": "importance"})
    fig.update_layout(title=f"Importance matrix R: D = {r.D:.2f}, C = {r.C:.2f}",
                      height=max(320, 40 * len(r.code_names) + 140), margin={"t": 60, "b": 10})
    st.plotly_chart(fig, width="stretch", key=f"{PAGE}.heatmap")
with right:
    fig = go.Figure()
    for j, (fname, (x, y)) in enumerate(r.curves.items()):
        color = px.colors.qualitative.Plotly[j % 10]
        fig.add_trace(go.Scatter(x=x, y=y, mode="markers", name=f"{fname} (test loss)", marker={"color": color},
                                 legendgroup=fname, showlegend=False))
        fig.add_trace(go.Scatter(x=x, y=running_min(y), mode="lines", name=fname, line={"color": color},
                                 legendgroup=fname))
    fig.update_layout(title=f"Loss-capacity curves, E = {r.E:.2f} (I = {r.I:.2f})", xaxis_title=r.axis,
                      yaxis_title="test loss (1 − R² or 1 − accuracy)", yaxis_range=[-0.03, 1.03], height=420,
                      margin={"t": 60, "b": 10})
    st.plotly_chart(fig, width="stretch", key=f"{PAGE}.curves")

# --- the numbers ---------------------------------------------------------------------------------------
st.subheader("Scores")
table = scores_frame(results)
m = st.columns(5)
for col, metric in zip(m, ["D", "C", "I", "E", "S"]):
    col.metric(metric, f"{getattr(r, metric):.2f}", help=f"for {focus}")
st.dataframe(table, hide_index=True, width="stretch",
             column_config={"C_mean": st.column_config.NumberColumn(help="unweighted mean of per-factor C (qedr)"),
                            "E_strict": st.column_config.NumberColumn(
                                help="E with the area above zero loss: a flat but poor curve scores low")})
long = table.melt(id_vars="representation", value_vars=["D", "C", "I", "E", "S"], var_name="score")
fig = px.bar(long, x="score", y="value", color="representation", barmode="group",
             range_y=[min(0.0, float(long["value"].min())) - 0.05, 1.05])
fig.update_layout(height=360, margin={"t": 20, "b": 10}, legend_title_text="")
st.plotly_chart(fig, width="stretch", key=f"{PAGE}.bars")
st.caption("Read E next to I: E measures how little capacity reaches the curve's own best loss, so a code that "
           "is never informative can still score a high E (see *noise*: I ≈ 0, E = 1, E_strict = −1).")

st.subheader(f"Per factor: {focus}")
pf = r.per_factor.reset_index()
st.dataframe(pf.round(4), hide_index=True, width="stretch")
with st.expander("Per code dimension (D_i and its weight ρ_i)"):
    st.dataframe(r.per_code.reset_index().round(4), hide_index=True, width="stretch")

d1, d2 = st.columns(2)
d1.download_button("Download all scores (CSV)", scores_csv(results), "dci_es_scores.csv", "text/csv",
                   key=f"{PAGE}.download")
d2.download_button("Download per-factor table (CSV)", factors_frame(results).to_csv(index=False).encode(),
                   "dci_es_factors.csv", "text/csv", key=f"{PAGE}.download_factors")
if probe in ("rf", "gbt") and any(k == "toy:elementwise" for k in chosen):
    st.caption("Tree probes split on thresholds, so the *elementwise* toy code looks as good as *identity* to them; "
               "switch to the Lasso or MLP probe to see its lower E.")
