"""Cells: generate single-cell counts with CFGen for chosen attributes and inspect them beside real cells."""

from __future__ import annotations

import pandas as pd
import plotly.express as px
import streamlit as st

from backend.cells import (
    ALL,
    DEFAULT_STEPS,
    NOT_SET,
    PLACEMENTS,
    SOLVERS,
    CellsRequest,
    augmentation_summary,
    checkpoint_report,
    csv_bytes,
    describe_selection,
    explore,
    fit,
    gene_expression,
    h5ad_bytes,
    ids_from_points,
    load_dataset,
    load_model,
    rare_type_augmentation,
    read_h5ad_counts,
)
from ui.common import busy, header, running, show_error
from ui.state import url_state
from ui.warmup import umap_note

header(
    "Cells: CFGen",
    "Generate single cells (integer counts) for chosen cell types and cell-cycle phases, see them beside real cells "
    "on a map, measure them against a negative-binomial baseline, and test whether they help with rare types.",
    "Palma, Richter, Zhang, Lubetzki, Tong, Dittadi, Theis: Multi-Modal and Multi-Attribute Generation of "
    "Single Cells with CFGen (ICLR 2025)",
    "https://arxiv.org/abs/2407.11734",
    """
1. **Count autoencoder**: `z = enc(log1p x)`, negative-binomial means `μ = softmax(dec(z)) · l` (l = total count),
   inverse dispersion θ per gene and cell type.
2. **Latent flow matching**: `v(x_t, t, c)` carries noise to latents along `x_t = t·z + (1−(1−σ)t)·ε`; in training
   each cell sees one random attribute (or none, 20%). **Compositional guidance** when sampling:
   `v = v(x|∅) + Σᵢ wᵢ (v(x|cᵢ) − v(x|∅))`; an ODE solver integrates t = 0 → 1, counts are **sampled** (integers).
3. Metrics in 30 PCs fit on held-out cells: **W2 over all cells pooled**; **unbiased MMD²** and W2 per type over types
   with ≥ 20 held-out cells (smaller ones listed, too small to rank). CFGen's all-type biased RBF-MMD / W2 beside.
""",
)

DEFAULTS = {"source": "pbmc68k", "v1": ALL, "v2": NOT_SET, "w1": 1.0, "w2": 1.0, "n": 500, "steps": DEFAULT_STEPS,
            "solver": "midpoint", "seed": 0, "place": "knn", "color": "cell_type", "gene": "CD14", "budget": 120}
s = url_state("cells", DEFAULTS, {"source": ["pbmc68k", "upload"], "w1": (0.0, 3.0), "w2": (0.0, 3.0), "n": (10, 100_000),
                                  "steps": (2, 100), "seed": (0, 10_000), "budget": (10, 300)})


@st.cache_resource(max_entries=2, show_spinner="Reading the upload…")
def read_upload(file_id: str, _up):
    return read_h5ad_counts(_up)


def choose(where, label: str, options: list, name: str, widget: str = "selectbox", **kw):
    if s[name] not in options:  # a restored URL setting stays valid (widgets take no index=)
        s[name] = options[0]
    return getattr(where, widget)(label, options, key=s.key(name), **kw)


def uploaded_model():
    """Upload, validate and train on an .h5ad; returns (model, real cells) or (None, None)."""
    up = st.file_uploader(".h5ad with raw integer counts in X or layers['counts']", type=["h5ad"], key="cells.upload")
    try:
        adata, cols = read_upload(up.file_id, up) if up is not None else (None, [])
    except ValueError as e:
        adata, cols = None, show_error(e, up.name)
    if adata is not None:
        st.caption(f"{adata.n_obs:,} cells × {adata.n_vars:,} genes; attribute columns: {', '.join(cols)}")
        keys = st.multiselect("Attributes to condition on", cols, cols[:1], max_selections=2, key="cells.upload_keys")
        st.slider("Training time budget (s)", 10, 300, step=10, key=s.key("budget"))
        st.button("Train CFGen on this file", type="primary", key="cells.train",  # the flag survives a rerun
                  on_click=lambda: st.session_state.update({"cells.train_requested": True}))
        if st.session_state.pop("cells.train_requested", False):
            try:  # the error shows outside the status box
                with running("Training CFGen", "cells.cancel_train", budget_s=float(s["budget"])) as p:
                    st.session_state["cells.user_model"] = m = fit(adata, condition_keys=keys, seed=int(s["seed"]),
                                                                   max_seconds=float(s["budget"]), progress=p)
                    p.steps_done = m.train_info["steps_done"]
            except ValueError as e:
                show_error(e, up.name)
    user = st.session_state.get("cells.user_model")
    if user is not None:
        st.success(checkpoint_report(user, user.real_data).summary)
        st.download_button("Download the trained model (.pt)", user.to_bytes, file_name="cells-uploaded.pt",
                           key="cells.dl_model")
        return user, user.real_data
    st.info("Upload an .h5ad of raw counts and train a model to generate cells, or switch to the bundled data.")
    return None, None


def source_section():  # -> (model, real cells, token)
    with st.container(border=True):
        c_src, c_info = st.columns([1, 3])
        c_src.radio("Data", ["pbmc68k", "upload"], key=s.key("source"),
                    format_func=lambda v: "pbmc68k (bundled, 700 PBMCs)" if v == "pbmc68k" else "Upload .h5ad counts")
        with c_info:
            if s["source"] != "pbmc68k":
                model, real = uploaded_model()
                return model, real, f"user-{model.digest}" if model is not None else None
            try:
                model, real = load_model("pbmc68k"), load_dataset("pbmc68k")  # both cached in the backend
            except ValueError as e:  # CheckpointError is a ValueError
                show_error(e)
                st.stop()
            st.caption(checkpoint_report(model, real).summary)
            return model, real, "pbmc68k"


def request_section(model, real) -> CellsRequest:
    choices, weights = [], []
    with st.container(border=True):
        cols = st.columns([2, 2, 1, 1, 1, 1])
        for i, k in enumerate(list(model.condition_keys)[:2]):
            v, w = f"v{i + 1}", f"w{i + 1}"
            choose(cols[i], k, [NOT_SET, ALL, *model.categories[k]], v)
            cols[i].slider(f"guidance weight ({k})", 0.0, 3.0, step=0.1, key=s.key(w), disabled=s[v] == NOT_SET,
                           help="0 = ignore this attribute, 1 = plain conditional, >1 = sharper")
            if s[v] != NOT_SET:
                choices, weights = [*choices, (k, s[v])], [*weights, float(s[w])]
        cols[2].number_input("cells", 10, 100_000, step=100, key=s.key("n"))
        cols[3].slider("ODE steps", 2, 100, key=s.key("steps"))
        choose(cols[4], "solver", list(SOLVERS), "solver")
        cols[5].number_input("seed", 0, 10_000, key=s.key("seed"))
        c1, c2, c3 = st.columns([2, 1, 1])
        places = list(PLACEMENTS) if model.reference is not None else ["knn", "joint"]
        choose(c1, "Placement of generated cells", places, "place", "radio", format_func=PLACEMENTS.get, horizontal=True,
               help="k-NN is instant; the first UMAP transform fits the real-cell UMAP once (about a minute).")
        choose(c2, "Color by", ["source", *[c for c in real.obs.columns if c != "n_counts"], "gene"], "color")
        choose(c3, "Gene", list(model.var_names), "gene", disabled=s["color"] != "gene")
    s.sync()
    return CellsRequest(tuple(choices), tuple(weights), int(s["n"]), int(s["seed"]), int(s["steps"]), s["solver"],
                        s["place"])


@st.fragment
def map_section(view) -> None:
    """The map of real + generated cells, and what a lasso selection holds."""
    t, color = view.table.copy(), s["color"]
    if color == "gene":
        t["expression"], color = gene_expression(view, s["gene"]), "expression"
    fig = px.scatter(t, x="x", y="y", color=color if color in t else "source", symbol="source",
                     symbol_map={"real": "circle", "generated": "x"}, custom_data=["row_id"],
                     hover_data=view.obs_columns[:3], render_mode="webgl", opacity=0.75, height=560,
                     color_continuous_scale="Viridis" if color == "expression" else None)
    fig.update_traces(marker={"size": 5}).update_layout(
        dragmode="lasso", margin={"l": 0, "r": 0, "t": 30, "b": 0}, legend={"itemsizing": "constant"},
        title=f"{view.map_kind.upper()} of {view.real.n_obs:,} real + {view.generated.n_obs:,} generated cells")
    event = st.plotly_chart(fig, key="cells.map", on_select="rerun", selection_mode=("lasso", "box"), width="stretch")
    st.caption(view.note + " Lasso or box-select cells to see their composition and top genes.")
    if event is not None and getattr(event, "selection", None) and event.selection.points:  # else keep the last
        st.session_state["cells_selected_ids"] = ids_from_points(event.selection.points)
    sel = describe_selection(view, ids=st.session_state.get("cells_selected_ids") or [])
    if not sel.n:
        return st.info("No cells selected yet: draw a lasso on the map.")
    a, b = st.columns([1, 2])
    a.markdown(f"**Selection: {sel.n:,} cells**")
    a.dataframe(sel.composition, hide_index=True, width="stretch")
    if sel.error:
        return b.error(sel.error)
    b.markdown("**Top genes, selection vs the rest** (Welch t-test, Bonferroni)")
    b.dataframe(sel.top_genes, hide_index=True, width="stretch")
    b.download_button("Download top genes (CSV)", csv_bytes(sel.top_genes), "selection_top_genes.csv",
                      key="cells.dl_genes")


def metrics_tab(view, report) -> None:
    if (cmp := view.comparison) is None:
        st.error(view.comparison_error)
    else:
        st.markdown(cmp.title())
        for col, (label, value, delta, delta_color) in zip(st.columns(3), cmp.headline()):
            col.metric(label, value, delta=delta, delta_color=delta_color)
        st.dataframe(cmp.per_type(), hide_index=True, width="stretch")
        st.caption(cmp.spread_note())
    if report.heldout is not None:
        st.markdown(f"**Shipped checkpoint, held-out evaluation** ({report.readout}; mean [95% interval])")
        st.dataframe(report.heldout, hide_index=True, width="stretch")
        st.dataframe(report.per_type, hide_index=True, width="stretch")
    if report.validation is not None:
        st.markdown(report.validation_note)
        st.dataframe(report.validation, hide_index=True, width="stretch")
        st.caption("For scale only (different data, many more cells): " + report.reference_note)


def counts_tab(c) -> None:
    st.caption(f"Per gene: {c.n_real} held-out real cells of the chosen group vs {c.n_generated:,} generated cells. "
               "Counts stay integers, so zeros and overdispersion can be compared directly.")
    a, b = st.columns(2)
    a.plotly_chart(px.scatter(c.zeros(), x="real", y="generated", hover_name="gene", height=380, title="Zeros per gene")
                   .add_shape(type="line", x0=0, y0=0, x1=1, y1=1, line={"dash": "dot", "color": "grey"}),
                   width="stretch", key="cells.zeros")
    mv = c.mean_var()
    fig = px.scatter(mv, x="mean", y="var", color="source", log_x=True, log_y=True, hover_name="gene", opacity=0.6,
                     height=380, title="Mean–variance per gene")
    fig.add_scatter(x=[mv["mean"].min(), mv["mean"].max()], y=[mv["mean"].min(), mv["mean"].max()], mode="lines",
                    name="Poisson (var = mean)", line={"dash": "dot", "color": "grey"})
    b.plotly_chart(fig, width="stretch", key="cells.meanvar")
    st.caption(f"Correlation of per-gene zero fractions, real vs generated: {c.zero_frac_corr:.3f}.")


def augmentation_tab(model, real, token: str, aug) -> None:
    if aug is None and st.button("Run the augmentation experiment", key="cells.run_aug", disabled=not
                                 (model.condition_keys and model.n_heldout), help="Logistic regression on PCs of real training cells, with "
                                 "and without generated cells for the rarest types; per-class F1 on held-out cells."):
        with running("Training classifiers", "cells.cancel_aug"):
            st.session_state[f"cells.aug.{token}"] = rare_type_augmentation(model, real, model.condition_keys[0])
    if (aug := aug or st.session_state.get(f"cells.aug.{token}")) is None:
        return
    for col, (label, value, delta) in zip(st.columns(3), augmentation_summary(aug)):
        col.metric(label, value, delta)
    df = pd.DataFrame(aug["per_type"])
    st.plotly_chart(px.bar(df, x="type", y="delta", color="rare", height=320, title="Change in per-class F1 from "
                           "adding generated cells (held-out real cells)"), width="stretch", key="cells.aug")
    st.dataframe(df, hide_index=True, width="stretch")
    st.caption(aug["note"])


model, real, token = source_section()
if model is None:
    s.sync()
    st.stop()
request = request_section(model, real)
try:
    with busy("Generating cells and placing them on the map…" + umap_note(request.placement)):
        view = explore(model, real, request)  # the backend keeps the last few results per model
except ValueError as e:
    show_error(e)
    st.stop()
map_section(view)
d1, d2 = st.columns([1, 2])
d1.download_button("Download generated cells (.h5ad)", lambda: h5ad_bytes(view.generated), type="primary",
                   file_name="cfgen_generated.h5ad", mime="application/octet-stream", key="cells.dl_h5ad")
d2.code(s.link(), language=None)
report = checkpoint_report(model, real)
tabs = st.tabs(["Metrics", "Count realism", "Rare-type augmentation", "Model card"])
for tab, draw in zip(tabs, (lambda: metrics_tab(view, report),
                            lambda: counts_tab(view.counts) if view.counts else st.info(view.comparison_error),
                            lambda: augmentation_tab(model, real, token, report.augmentation),
                            lambda: st.json(model.card or getattr(model, "train_info", {}), expanded=not model.card))):
    with tab:
        draw()
