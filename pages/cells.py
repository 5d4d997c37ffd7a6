"""Cells: generate single-cell counts with CFGen for chosen attributes and inspect them beside real cells."""

from __future__ import annotations

import streamlit as st

from backend.cells.model import DEFAULT_STEPS
from ui.common import header, running, show_error
from ui.state import url_state

NOT_SET = "(not conditioned)"
ALL = "(all, training proportions)"  # = backend.cells.explore.ALL (kept literal: no heavy import at page top)
PLACEMENTS = {"knn": "k-NN placement (approximate, instant)", "umap": "UMAP transform (batch-dependent)",
              "joint": "Joint UMAP of real + generated (recomputed)"}
SOLVERS = ["midpoint", "euler"]

header(
    "Cells: CFGen",
    "Generate single cells (integer gene counts) for chosen cell types and cell-cycle phases, see them beside real "
    "cells on a map, measure how close they are against a negative-binomial baseline, and test whether they help "
    "a classifier on rare types.",
    "Palma, Richter, Zhang, Lubetzki, Tong, Dittadi, Theis: Multi-Modal and Multi-Attribute Generation of "
    "Single Cells with CFGen (ICLR 2025)",
    "https://arxiv.org/abs/2407.11734",
    """
1. **Stage 1, count autoencoder**: `z = enc(log1p x)`, decoder gives negative-binomial means
   `μ = softmax(dec(z)) · l` (l = the cell's total count) with a learned per-gene inverse dispersion θ.
2. **Stage 2, flow matching in latent space**: a small network learns the velocity `v(x_t, t, c)` that carries
   noise `ε` to latents `z` along `x_t = t·z + (1−(1−σ)t)·ε`, target `u = z − (1−σ)ε`; during training it sees
   one random attribute (or none, 20%) per cell.
3. **Compositional guidance** when sampling: `v = v(x|∅) + Σᵢ wᵢ (v(x|cᵢ) − v(x|∅))`, so cell type and phase
   combine even where that pair never occurred (e.g. CD14+ monocytes in G2M).
4. A fixed-step ODE solver (midpoint/Euler) integrates from t=0 to 1; the decoder gives μ, the size factor l is
   copied from a real training cell of the same condition, and counts are **sampled** from the negative
   binomial (θ per cell type and gene): integers.
5. Metrics follow CFGen's code: 30 PCs fit on held-out real cells, per-type W2 / RBF-MMD / 5-NN real-vs-fake F1.
""",
)

DEFAULTS = {"source": "pbmc68k", "v1": ALL, "v2": NOT_SET, "w1": 1.5, "w2": 1.0, "n": 500, "steps": DEFAULT_STEPS,
            "solver": "midpoint", "seed": 0, "place": "knn", "color": "cell_type", "gene": "CD14", "budget": 120}
s = url_state("cells", DEFAULTS)


@st.cache_resource(show_spinner="Loading the CFGen model and pbmc68k cells…")
def shipped():
    from backend.cells import load_dataset, load_model

    return load_model("pbmc68k"), load_dataset("pbmc68k")


@st.cache_resource(max_entries=2, show_spinner=False)
def reference_map(_model, _real, token: str):
    from backend.cells.explore import reference

    return reference(_model, _real)


@st.cache_resource(max_entries=4, show_spinner="Generating cells…")
def generate(_model, _train_obs, token: str, choices: tuple, weights: tuple, n: int, seed: int, steps: int,
             solver: str):
    from backend.cells.explore import make_conditions

    cond = make_conditions(_model, _train_obs, dict(choices), n, seed)
    guidance = {k: w for (k, _), w in zip(choices, weights)}
    return _model.generate(n, conditions=cond, guidance=guidance, seed=seed, steps=steps, solver=solver)


@st.cache_resource(max_entries=4, show_spinner="Placing cells on the map…")
def placed(_emb, _real, _gen, key: tuple, how: str, seed: int):
    from backend.cells.explore import map_table

    return map_table(_emb, _real, _gen, how=how, seed=seed)


@st.cache_resource(max_entries=4, show_spinner="Measuring against held-out cells…")
def live(_model, _real, _gen, key: tuple, by: str | None):
    from backend.cells.explore import live_metrics

    return live_metrics(_model, _real, _gen, by=by)


def _fix(name: str, options: list) -> None:
    """Keep a restored/stale setting valid for the current options (widgets take no index=)."""
    if s[name] not in options:
        s[name] = options[0]


# ---------------------------------------------------------------- data source and model
with st.container(border=True):
    c_src, c_info = st.columns([1, 3])
    with c_src:
        st.radio("Data", ["pbmc68k", "upload"], key=s.key("source"),
                 format_func=lambda v: "pbmc68k (bundled, 700 PBMCs)" if v == "pbmc68k" else "Upload .h5ad counts")
    model = real = None
    token = ""
    with c_info:
        if s["source"] == "pbmc68k":
            try:
                model, real = shipped()
            except ValueError as e:  # CheckpointError is a ValueError
                show_error(e)
                st.stop()
            token = "pbmc68k"
            st.caption(f"Shipped checkpoint `cells-pbmc68k`: {real.n_obs} real cells × {real.n_vars} genes, "
                       f"attributes {', '.join(model.condition_keys)}; trained on "
                       f"{model.card.get('n_train', '?')} cells, evaluated on {model.card.get('n_eval', '?')} "
                       "held-out cells.")
        else:
            up = st.file_uploader("An .h5ad with raw integer counts in X or layers['counts']", type=["h5ad"],
                                  key="cells.upload")
            if up is not None:
                from backend.cells import read_h5ad_counts

                try:
                    adata, cols = read_h5ad_counts(up)
                    st.session_state["cells.upload_data"] = (up.file_id, adata, cols)
                except ValueError as e:
                    st.session_state.pop("cells.upload_data", None)
                    show_error(e)
            held = st.session_state.get("cells.upload_data")
            if held is not None and up is not None and held[0] == up.file_id:
                _, adata, cols = held
                st.caption(f"{adata.n_obs:,} cells × {adata.n_vars:,} genes; attribute columns: {', '.join(cols)}")
                keys = st.multiselect("Attributes to condition on (one or two)", cols, default=cols[:1],
                                      max_selections=2, key="cells.upload_keys")
                st.slider("Training time budget (s)", 10, 300, step=10, key=s.key("budget"),
                          help="Both stages share it: ~60% autoencoder, ~40% flow.")
                # a callback flag survives a rerun that interrupts the click's run (e.g. a re-sent upload)
                st.button("Train CFGen on this file", type="primary", key="cells.train",
                          on_click=lambda: st.session_state.update({"cells.train_requested": True}))
                if st.session_state.pop("cells.train_requested", False):
                    from backend.cells import fit

                    with running("Training CFGen", "cells.cancel_train") as p:
                        try:
                            m = fit(adata, condition_keys=keys, max_seconds=float(s["budget"]), seed=int(s["seed"]),
                                    progress=p)
                            st.session_state["cells.user_model"] = m
                        except ValueError as e:
                            show_error(e)
            user = st.session_state.get("cells.user_model")
            if user is not None:
                model, real = user, user.real_data
                token = f"user-{id(user)}"
                info = user.train_info
                st.success(f"Trained in {info['wall_seconds']:.0f} s: {info['ae_steps']} autoencoder + "
                           f"{info['flow_steps']} flow steps on {info['n_train']:,} cells × {info['n_genes']:,} genes "
                           f"({info['n_test']:,} held out).")
                st.download_button("Download the trained model (.pt)", user.to_bytes, file_name="cells-uploaded.pt",
                                   key="cells.dl_model")
    if model is None:
        st.info("Upload an .h5ad of raw counts and train a model to generate cells, or switch to the bundled data.")
        s.sync()
        st.stop()

# ---------------------------------------------------------------- generation controls
from backend.cells.explore import split_real  # noqa: E402  (after the model exists)

keys = list(model.condition_keys)
with st.container(border=True):
    cols = st.columns([2, 2, 1, 1, 1, 1])
    choices, weights = [], []
    for i, k in enumerate(keys[:2]):
        opts = [NOT_SET, ALL, *model.categories[k]]
        name = f"v{i + 1}"
        _fix(name, opts)
        with cols[i]:
            st.selectbox(k, opts, key=s.key(name))
            st.slider(f"guidance weight ({k})", 0.0, 3.0, step=0.1, key=s.key(f"w{i + 1}"),
                      disabled=s[name] == NOT_SET, help="0 = ignore this attribute, 1 = plain conditional, >1 = "
                      "sharper")
        if s[name] != NOT_SET:
            choices.append((k, s[name]))
            weights.append(float(s[f"w{i + 1}"]))
    with cols[2]:
        st.number_input("cells", 10, 100_000, step=100, key=s.key("n"))
    with cols[3]:
        st.slider("ODE steps", 2, 100, key=s.key("steps"))
    with cols[4]:
        _fix("solver", SOLVERS)
        st.selectbox("solver", SOLVERS, key=s.key("solver"))
    with cols[5]:
        st.number_input("seed", 0, 10_000, key=s.key("seed"))

try:
    train, test = split_real(model, real)
except ValueError as e:
    show_error(e)
    st.stop()
gen_key = (token, tuple(choices), tuple(weights), int(s["n"]), int(s["seed"]), int(s["steps"]), s["solver"])
try:
    gen = generate(model, train.obs, *gen_key)
except ValueError as e:
    show_error(e)
    st.stop()

# ---------------------------------------------------------------- the map
emb = reference_map(model, real, token)
obs_cols = [c for c in real.obs.columns if c != "n_counts"]
color_opts = ["source", *obs_cols, "gene"]
_fix("color", color_opts)
place_opts = list(PLACEMENTS) if emb.method == "umap" else ["knn", "joint"]
_fix("place", place_opts)
genes = list(model.var_names)
_fix("gene", genes)
c1, c2, c3 = st.columns([2, 1, 1])
with c1:
    st.radio("Placement of generated cells", place_opts, format_func=PLACEMENTS.get, key=s.key("place"),
             horizontal=True, help="k-NN placement is instant. The first UMAP transform in a server process fits "
             "the real-cell UMAP model once (about a minute on 2 busy cores, numba compilation); later requests "
             "reuse it. The joint UMAP is recomputed for every request.")
with c2:
    st.selectbox("Color by", color_opts, key=s.key("color"))
with c3:
    st.selectbox("Gene", genes, key=s.key("gene"), disabled=s["color"] != "gene")
s.sync()

try:
    table, note = placed(emb, real, gen, gen_key, s["place"], int(s["seed"]))
except ValueError as e:
    show_error(e)
    st.stop()


@st.fragment
def map_and_selection():
    import plotly.express as px

    from backend.cells.explore import composition, csv_bytes, expression, ids_from_points, selection_genes

    t = table.copy()
    color = s["color"]
    if color == "gene":
        t["expression"] = expression(real, gen, s["gene"], t)
        color = "expression"
    fig = px.scatter(t, x="x", y="y", color=color, symbol="source", symbol_map={"real": "circle",
                     "generated": "x"}, custom_data=["row_id"], hover_data=[c for c in obs_cols if c in t][:3],
                     render_mode="webgl", opacity=0.75, height=560,
                     color_continuous_scale="Viridis" if color == "expression" else None)
    fig.update_traces(marker={"size": 5})
    fig.update_layout(dragmode="lasso", margin={"l": 0, "r": 0, "t": 30, "b": 0}, legend={"itemsizing": "constant"},
                      title=f"{'UMAP' if emb.method == 'umap' else 'PCA'} of {real.n_obs:,} real cells "
                            f"+ {gen.n_obs:,} generated", xaxis_title=None, yaxis_title=None)
    if emb.method != "umap":
        st.caption("Map: PCA of the real cells (PC1 vs PC2), shown instantly; choose the joint UMAP for a UMAP view.")
    event = st.plotly_chart(fig, key="cells.map", on_select="rerun", selection_mode=("lasso", "box"),
                            width="stretch")
    st.caption(note + " Lasso or box-select cells to see their composition and top genes.")
    pts = event.selection.points if event is not None and hasattr(event, "selection") else []
    if pts:
        st.session_state["cells_selected_ids"] = ids_from_points(pts)
    ids = st.session_state.get("cells_selected_ids") or []
    ids = [i for i in ids if i < len(t)]
    if not ids:
        st.info("No cells selected yet: draw a lasso on the map.")
        return
    by = keys[0] if keys and keys[0] in t else "source"
    comp = composition(t, ids, by)
    a, b = st.columns([1, 2])
    with a:
        st.markdown(f"**Selection: {len(ids):,} cells**")
        st.dataframe(comp, hide_index=True, width="stretch")
    with b:
        try:
            tg = selection_genes(real, gen, t, ids)
            st.markdown("**Top genes, selection vs the rest** (Welch t-test, Bonferroni)")
            st.dataframe(tg, hide_index=True, width="stretch")
            st.download_button("Download top genes (CSV)", csv_bytes(tg), "selection_top_genes.csv",
                               key="cells.dl_genes")
        except ValueError as e:
            show_error(e)


map_and_selection()

# ---------------------------------------------------------------- downloads
d1, d2 = st.columns([1, 2])
with d1:
    from backend.cells.explore import h5ad_bytes

    st.download_button("Download generated cells (.h5ad)", lambda: h5ad_bytes(gen), file_name="cfgen_generated.h5ad",
                       mime="application/octet-stream", key="cells.dl_h5ad", type="primary")
with d2:
    st.code(s.link(), language=None)

# ---------------------------------------------------------------- numbers
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import plotly.express as px  # noqa: E402

tab_m, tab_c, tab_a, tab_card = st.tabs(["Metrics", "Count realism", "Rare-type augmentation", "Model card"])

with tab_m:
    by = keys[0] if keys and dict(choices).get(keys[0]) else None
    try:
        lm = live(model, real, gen, gen_key, by)
        cf, nb = lm["cfgen"], lm.get("baseline")
        st.markdown(f"**These {lm['n_gen']:,} generated cells vs {lm['n_test']:,} held-out real cells**"
                    f" ({'per ' + by if by else 'all cells pooled'}, 30 PCs fit on the held-out cells; lower is "
                    "better except 5-NN F1, where 0.5 means indistinguishable)")
        m1, m2, m3 = st.columns(3)
        for col, key, label in ((m1, "w2", "W2"), (m2, "rbf_mmd", "RBF-MMD"), (m3, "knn_f1", "5-NN F1")):
            delta = None if nb is None else f"{cf[key] - nb[key]:+.3f} vs NB baseline ({nb[key]:.3f})"
            col.metric(f"{label} (CFGen)", f"{cf[key]:.3f}", delta=delta,
                       delta_color="off" if key == "knn_f1" else "inverse")
        per = cf["per_type"].copy()
        if nb is not None:
            per = per.merge(nb["per_type"][["type", "w2", "rbf_mmd", "knn_f1", "centroid_offset", "spread_ratio"]],
                            on="type", suffixes=("", " (NB)"))
        st.dataframe(per.round(3), hide_index=True, width="stretch")
        rt = lm.get("real_train")
        st.caption("W2 mixes two things, shown per type: *centroid_offset* (distance between the held-out and "
                   "generated means) and *spread_ratio* (generated RMS spread around its mean / the held-out cells'). "
                   f"Mean spread ratio: CFGen {cf['spread_ratio']:.2f}"
                   + ("" if nb is None else f", NB baseline {nb['spread_ratio']:.2f}")
                   + ("" if rt is None else f", real training cells {rt['spread_ratio']:.2f} (reference)")
                   + ". The PCs are fit on the held-out cells, so any other set, even real cells, looks less spread "
                   "in them; compare with the reference. On types with a handful of held-out cells, a generator "
                   "that is less spread than real cells scores a lower W2 than a faithful one.")
    except ValueError as e:
        show_error(e)
    card = model.card or {}
    if card.get("metrics"):
        mt, bl = card["metrics"], card["baselines"]
        st.markdown(f"**Shipped checkpoint, held-out evaluation** ({card.get('n_eval')} held-out cells, one generated "
                    "cell per held-out cell, 3 generation seeds, mean ± SEM; cell-type guidance "
                    f"{(card.get('validation') or {}).get('guidance', 1.5)}, chosen on a validation split of the training "
                    "cells; lower is better, 5-NN F1 ideal 0.5)")
        rows = [{"model": "CFGen", "RBF-MMD": f"{mt['rbf_mmd']:.3f} ± {mt['rbf_mmd_sem']:.3f}",
                 "W2": f"{mt['w2']:.3f} ± {mt['w2_sem']:.3f}", "W2, types ≥ 20 cells": mt.get("w2_types_ge20"),
                 "5-NN F1": f"{mt['knn_f1']:.3f} ± {mt['knn_f1_sem']:.3f}"},
                {"model": "per-gene NB per type (baseline)", "RBF-MMD": f"{bl['nb_rbf_mmd']:.3f}",
                 "W2": f"{bl['nb_w2']:.3f}", "W2, types ≥ 20 cells": bl.get("nb_w2_types_ge20"),
                 "5-NN F1": f"{bl['nb_knn_f1']:.3f}"}]
        if "real_train_w2" in bl:
            rows.append({"model": "real training cells (reference)", "RBF-MMD": f"{bl['real_train_rbf_mmd']:.3f}",
                         "W2": f"{bl['real_train_w2']:.3f}", "W2, types ≥ 20 cells": bl.get("real_train_w2_types_ge20"),
                         "5-NN F1": f"{bl['real_train_knn_f1']:.3f}"})
        st.dataframe(pd.DataFrame(rows), hide_index=True, width="stretch")
        st.caption("The reference row draws real training cells with the same per-type counts: what a perfect "
                   "generator could score. With 2–60 held-out cells per type, W2 favours tight, under-dispersed "
                   "samples, which is why the independent NB baseline can score close to (or below) real cells.")
        if card.get("guidance_sweep"):
            if (card.get("validation") or {}).get("rows"):
                v = card["validation"]
                st.markdown(f"Guidance and ODE steps chosen on validation ({v['n_val']} training cells held back from a "
                            f"model trained on the other {v['n_fit']}; NB baseline there: W2 {v['nb']['w2']:.3f}, "
                            f"RBF-MMD {v['nb']['rbf_mmd']:.3f}):")
                st.dataframe(pd.DataFrame(v["rows"]).round(3), hide_index=True, width="stretch")
            st.markdown("Guidance weight sweep on the held-out cells (informative only, not used for any choice):")
            st.dataframe(pd.DataFrame(card["guidance_sweep"]).round(3), hide_index=True, width="stretch")
        st.caption("For scale only (different data, many more cells): " + card.get("reference_numbers", {}).get(
            "note", ""))

with tab_c:
    from backend.cells import count_stats

    ref = test
    if keys and dict(choices).get(keys[0]) not in (None, ALL):
        ref = test[test.obs[keys[0]].astype(str) == dict(choices)[keys[0]]]
    if ref.n_obs < 2:
        ref = test
    rs, gs = count_stats(ref), count_stats(gen)
    st.caption(f"Per gene: {ref.n_obs} held-out real cells of the chosen group vs {gen.n_obs:,} generated cells. "
               "Counts stay integers, so zeros and overdispersion can be compared directly.")
    a, b = st.columns(2)
    with a:
        zf = pd.DataFrame({"real": rs["zero_frac"], "generated": gs["zero_frac"], "gene": rs["gene"]})
        fig = px.scatter(zf, x="real", y="generated", hover_name="gene", render_mode="svg", height=380,
                         title="Fraction of zeros per gene")
        fig.add_shape(type="line", x0=0, y0=0, x1=1, y1=1, line={"dash": "dot", "color": "grey"})
        st.plotly_chart(fig, width="stretch", key="cells.zeros")
    with b:
        mv = pd.concat([rs.assign(source="real"), gs.assign(source="generated")])
        mv = mv[(mv["mean"] > 0) & (mv["var"] > 0)]
        fig = px.scatter(mv, x="mean", y="var", color="source", log_x=True, log_y=True, hover_name="gene",
                         render_mode="svg", opacity=0.6, height=380, title="Mean–variance per gene")
        lo, hi = float(mv["mean"].min()), float(mv["mean"].max())
        fig.add_scatter(x=[lo, hi], y=[lo, hi], mode="lines", name="Poisson (var = mean)",
                        line={"dash": "dot", "color": "grey"})
        st.plotly_chart(fig, width="stretch", key="cells.meanvar")
    r = np.corrcoef(rs["zero_frac"], gs["zero_frac"])[0, 1] if len(rs) > 2 else float("nan")
    st.caption(f"Correlation of per-gene zero fractions, real vs generated: {r:.3f}.")

with tab_a:
    aug = (model.card or {}).get("augmentation")
    if aug is None:
        st.markdown("Train a logistic-regression classifier on PCs of real training cells, with and without "
                    "generated cells for the rarest types, and score per-class F1 on held-out real cells.")
        if st.button("Run the augmentation experiment", key="cells.run_aug") and keys:
            from backend.cells.metrics import augmentation_experiment

            with st.spinner("Training classifiers…"):
                try:
                    st.session_state["cells.user_aug"] = augmentation_experiment(model, train, test, by=keys[0])
                except ValueError as e:
                    show_error(e)
        aug = st.session_state.get("cells.user_aug") if token.startswith("user") else None
    if aug is not None:
        sm = aug["summary"]
        a1, a2, a3 = st.columns(3)
        a1.metric("Rare types, mean F1", f"{sm['rare_f1_augmented']:.3f}",
                  f"{sm['rare_f1_augmented'] - sm['rare_f1_real_only']:+.3f} vs real only")
        a2.metric("Macro F1", f"{sm['macro_f1_augmented']:.3f}",
                  f"{sm['macro_f1_augmented'] - sm['macro_f1_real_only']:+.3f} vs real only")
        a3.metric("Balanced accuracy", f"{sm['balanced_acc_augmented']:.3f}",
                  f"{sm['balanced_acc_augmented'] - sm['balanced_acc_real_only']:+.3f} vs real only")
        df = pd.DataFrame(aug["per_type"])
        fig = px.bar(df, x="type", y="delta", color="rare", height=320,
                     title="Change in per-class F1 from adding generated cells (held-out real cells)")
        st.plotly_chart(fig, width="stretch", key="cells.aug")
        st.dataframe(df, hide_index=True, width="stretch")
        st.caption(f"Rare types: {', '.join(aug['rare'])}, topped up to {aug['target_per_rare_type']} training cells "
                   f"each with generated cells; {len(aug['seeds'])} generation seeds. {aug['note']}.")

with tab_card:
    if model.card:
        st.json(model.card, expanded=False)
    else:
        st.json(getattr(model, "train_info", {}), expanded=True)
