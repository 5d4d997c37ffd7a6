"""Robustness: OOD vs ID accuracy over a zoo of a few hundred small digit classifiers."""

from __future__ import annotations

import json

import numpy as np
import plotly.graph_objects as go
import streamlit as st
from scipy.stats import norm

from backend.robustness import (
    ARCHS,
    AUGS,
    INTERVENTIONS,
    KINDS,
    TRANSFER,
    ood_choices,
    previews,
    reliability_pair,
    severity_labels,
    shipped_members,
    study,
    train_one,
)
from ui.common import header, running, show_error, was_cancelled
from ui.state import url_state

PAGE = "robustness"
header(
    "Robustness: out-of-distribution accuracy",
    "Does a classifier that is better on its own data stay better under a shift? A **zoo of a few hundred small "
    "digit classifiers** (architectures x augmentations x epochs x learning rates x shots, plus fonts-pretrained "
    "transfer) is scored on real MNIST and on natural and synthetic shifts.",
    "Wenzel, Dittadi, Gehler, Simon-Gabriel, Horn, Zietlow, Kernert, Russell, Brox, Schiele, Schölkopf, Locatello: "
    "Assaying Out-Of-Distribution Generalization in Transfer Learning (NeurIPS 2022)",
    "https://arxiv.org/abs/2207.09239",
    r"""
1. **Domains.** ID: 5,000 real MNIST digits (4k train / 1k test), 16x16. Natural shifts: UCI digits (scikit-learn),
   Hershey-font printed digits (OpenCV), and the reverse pairs (trained on UCI or fonts, tested on MNIST).
   Synthetic: rotation, noise, blur, contrast, stroke thickness, elastic, translation, JPEG at 5 severities.
2. **Zoo.** Each member trains with the one training loop; accuracy, ECE, NLL on every domain, PGD accuracy
   (L-inf 0.1, 200 images) and mean corruption accuracy.
3. **Fit.** As in the paper, accuracies go through the probit $\Phi^{-1}$; OOD is regressed on ID:
   $\Phi^{-1}(a_{OOD}) = w\,\Phi^{-1}(a_{ID}) + b$, with $R^2$, Kendall $\tau$ and 95% bootstrap intervals.
   Near-chance members (ID accuracy < 0.2) are drawn but left out of the fit.
4. **Paired effect**: members that differ in one intervention only; the change of ID accuracy and of the
   OOD residual above the fit. **Proxies**: Kendall $\tau$ of each ID-side metric with OOD accuracy.
""",
)

DEFAULTS = {"id": "mnist", "ood": "uci", "color": "arch", "intervention": "aug", "member": ""}
s = url_state(PAGE, DEFAULTS, {"id": ["mnist", "uci", "fonts"], "color": list(INTERVENTIONS),
                              "intervention": list(INTERVENTIONS)})
EXTRA = f"{PAGE}._extra"
st.session_state.setdefault(EXTRA, [])


def controls():
    c1, c2, c3, c4 = st.columns([1, 1.4, 1, 1])
    c1.selectbox("ID domain (trained on)", ["mnist", "uci", "fonts"], key=s.key("id"))
    choices = ood_choices(s["id"])
    if s["ood"] not in choices:
        s["ood"] = choices[0]
    c2.selectbox("Shift (OOD domain)", choices, key=s.key("ood"),
                 help="'kind/severity' is a synthetic shift of the ID test set; a name is another natural domain.")
    c3.selectbox("Colour by", list(INTERVENTIONS), key=s.key("color"))
    c4.selectbox("Paired effect of", list(INTERVENTIONS), key=s.key("intervention"))
    s.sync()
    st.caption(f"[Link to these settings]({s.link()})")


def _probit_axis(values):
    ticks = [v for v in (0.2, 0.3, 0.5, 0.7, 0.8, 0.9, 0.95, 0.98, 0.99, 0.995) if v >= min(values) - 0.05]
    return {"tickvals": list(norm.ppf(ticks)), "ticktext": [f"{t:g}" for t in ticks]}


def scatter(r):
    pts, fig = r.points, go.Figure()
    pr = lambda a: norm.ppf(np.clip(np.asarray(a, float), 1e-3, 1 - 1e-3))  # noqa: E731
    for val, g in pts[~pts["extra"]].groupby(s["color"]):
        ok, low = g[~g["near_chance"]], g[g["near_chance"]]
        fig.add_trace(go.Scatter(x=pr(ok["id_acc"]), y=pr(ok["ood_acc"]), mode="markers", name=str(val),
                                 text=ok["id"], marker={"size": 7, "opacity": 0.75}))
        if len(low):
            fig.add_trace(go.Scatter(x=pr(low["id_acc"]), y=pr(low["ood_acc"]), mode="markers", text=low["id"],
                                     name=f"{val} (near chance)", marker={"symbol": "x", "color": "grey"}))
    new = pts[pts["extra"]]
    if len(new):
        fig.add_trace(go.Scatter(x=pr(new["id_acc"]), y=pr(new["ood_acc"]), mode="markers", name="trained here",
                                 text=new["id"], marker={"symbol": "star", "size": 16, "color": "black"}))
    lo, hi = pr([min(pts["id_acc"].min(), pts["ood_acc"].min()), 0.999])
    fig.add_trace(go.Scatter(x=[lo, hi], y=[lo, hi], mode="lines", name="y = x", line={"dash": "dot", "color": "grey"}))
    fig.add_trace(go.Scatter(x=pr(r.line["id_acc"]), y=pr(r.line["ood_acc"]), mode="lines", name="probit fit",
                             line={"color": "crimson", "width": 3}))
    axis = _probit_axis(list(pts["id_acc"]) + list(pts["ood_acc"]))
    fig.update_layout(height=520, xaxis={"title": f"ID accuracy ({r.id_domain} test, probit scale)", **axis},
                      yaxis={"title": f"OOD accuracy ({r.ood}, probit scale)", **axis}, margin={"t": 30, "b": 10},
                      hovermode="closest")
    st.plotly_chart(fig, width="stretch", key=f"{PAGE}.scatter")
    for note in r.notes:
        st.caption(note)


def numbers(r):
    f, ci = r.fit, r.fit["intervals"]
    c = st.columns(4)
    c[0].metric("slope", f"{f['slope']:.2f}", help=f"95% CI {ci['slope'][0]:.2f} to {ci['slope'][1]:.2f}")
    c[1].metric("R² (probit)", f"{f['r2']:.2f}", help=f"95% CI {ci['r2'][0]:.2f} to {ci['r2'][1]:.2f}")
    c[2].metric("Kendall τ", f"{f['tau']:.2f}", help=f"95% CI {ci['tau'][0]:.2f} to {ci['tau'][1]:.2f}")
    c[3].metric("members in the fit", f["n"])
    st.caption(f"95% bootstrap intervals: slope {ci['slope'][0]:.2f} to {ci['slope'][1]:.2f}, R² {ci['r2'][0]:.2f} "
               f"to {ci['r2'][1]:.2f}, τ {ci['tau'][0]:.2f} to {ci['tau'][1]:.2f}. Slope 1 with the fit on y = x would "
               "mean no accuracy is lost under the shift; a slope above 1 means ID gains are amplified OOD.")


def effects(r):
    st.subheader(f"Paired effect of {r.intervention} (against {r.reference})")
    if r.effects.empty:
        st.info("No pairs of members differ only in this intervention for this ID domain.")
    else:
        st.dataframe(r.effects.round(3), hide_index=True, width="stretch")
        st.caption("d_id_acc / d_ood_acc: mean change against the reference; d_residual: change of the probit "
                   "distance above the fit line (> 0: more robust than its ID accuracy predicts).")
    st.subheader("Which ID-side metric best predicts OOD accuracy?")
    st.dataframe(r.proxies.round(3), hide_index=True, width="stretch")


def reliability(r):
    st.subheader("Reliability: ID vs OOD")
    members = shipped_members() + [x["id"] for x in st.session_state[EXTRA] if x["id_domain"] == "mnist"]
    if r.id_domain != "mnist" or not members:
        st.caption("Reliability diagrams are drawn for the representative MNIST members (pick ID domain mnist).")
        return
    if s["member"] not in members:
        s["member"] = members[0]
    st.selectbox("Member", members, key=s.key("member"))
    bins = reliability_pair(s["member"], r.ood)
    fig = go.Figure([go.Scatter(x=[0, 1], y=[0, 1], mode="lines", name="perfect", line={"dash": "dot"})])
    for name, b in bins.items():
        fig.add_trace(go.Scatter(x=b["confidence"], y=b["accuracy"], mode="lines+markers", name=name))
    fig.update_layout(height=340, xaxis_title="confidence", yaxis_title="accuracy", margin={"t": 20, "b": 10})
    st.plotly_chart(fig, width="stretch", key=f"{PAGE}.reliability")


def preview_section():
    with st.expander("Previews: every shift at every severity", expanded=False):
        p = previews(seed=0, n=4)
        for kind in KINDS:
            tiles = [np.concatenate(list(p[kind][sev]), axis=1) for sev in range(6)]
            st.image(np.concatenate(tiles, axis=0), caption=f"{kind}: " + ", ".join(severity_labels(kind)), width=120)
        st.image(np.concatenate([np.concatenate(list(v), axis=1) for v in p["natural"].values()], axis=0), width=240,
                 caption="natural domains: mnist, uci, fonts")


def train_section():
    st.subheader("Train one more member")
    if st.session_state.get(f"{PAGE}._msg"):
        st.success(st.session_state[f"{PAGE}._msg"])
    with st.form(f"{PAGE}.train"):
        c = st.columns(4)
        arch = c[0].selectbox("Architecture", ARCHS, index=3, key=f"{PAGE}.t_arch")
        aug = c[1].selectbox("Augmentation", AUGS, index=1, key=f"{PAGE}.t_aug")
        transfer = c[2].selectbox("Transfer (fonts-pretrained)", TRANSFER, key=f"{PAGE}.t_transfer")
        shots = c[3].selectbox("Shots per class", [10, 100, 0], index=1, format_func=lambda v: "all" if v == 0 else str(v),
                             key=f"{PAGE}.t_shots")
        c = st.columns(3)
        epochs = c[0].slider("Epochs", 1, 8, 2, key=f"{PAGE}.t_epochs")
        lr = c[1].select_slider("Learning rate", [1e-3, 3e-3, 1e-2], value=3e-3, key=f"{PAGE}.t_lr")
        seed = c[2].number_input("Seed", 0, 10_000, 0, key=f"{PAGE}.t_seed")
        go_ = st.form_submit_button("Train and add to the scatter", type="primary", key=f"{PAGE}.t_go")
    if go_ and not was_cancelled(f"{PAGE}.cancel"):
        config = {"arch": arch, "aug": aug, "transfer": transfer, "shots": shots, "epochs": epochs, "lr": lr,
                  "train_domain": s["id"]}
        row = None
        with running("Training one member", f"{PAGE}.cancel") as p:
            try:
                row = train_one(config, seed=int(seed), progress=p)
            except ValueError as e:
                p.error = e
        if getattr(p, "error", None):
            show_error(p.error)
        elif row is not None:
            st.session_state[EXTRA] = [x for x in st.session_state[EXTRA] if x["id"] != row["id"]] + [row]
            st.session_state[f"{PAGE}._msg"] = (f"Added {row['id']} (the star): ID accuracy {row['id_acc']:.3f}, "
                                                 f"OOD accuracy on {s['ood']} {row.get('acc:' + s['ood'], float('nan')):.3f}, "
                                                 f"trained in {row['train_s']:.1f} s.")
            st.rerun()


controls()
try:
    result = study(s["id"], s["ood"], s["intervention"], st.session_state[EXTRA])
except ValueError as e:
    show_error(e)
    st.stop()
scatter(result)
numbers(result)
train_section()
effects(result)
reliability(result)
preview_section()
d1, d2 = st.columns(2)
d1.download_button("Download the points (CSV)", result.points.to_csv(index=False), "robustness_points.csv", "text/csv",
                   key=f"{PAGE}.dl_points")
d2.download_button("Download the fit (JSON)", json.dumps(result.fit, indent=1), "robustness_fit.json",
                   "application/json", key=f"{PAGE}.dl_fit")
