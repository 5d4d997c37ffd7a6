"""Slots: how a Slot Attention autoencoder splits generated scenes (or your image) into objects."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import streamlit as st

from backend.core import CheckpointError, png_bytes, upscale
from backend.slots import (
    VARIANTS,
    colorize,
    dataset_metrics,
    mask_image,
    model_report,
    overlay,
    segment_scenes,
    segment_upload,
)
from ui.common import header, running, show_error
from ui.state import url_state

HOW = """
1. A small CNN encodes the image into a 32×32 grid of features (plus a position embedding).
2. **Slot Attention**: K Gaussian-sampled slots attend to the features for 3 iterations, softmax *over slots* (slots
   compete for each pixel), weighted mean, GRU + MLP update. 3. A broadcast decoder gives each slot RGB + a mask
   logit; masks are softmaxed over slots and the image is Σₖ maskₖ · rgbₖ. Paper: reconstruction error only; argmax.

**Everything the shipped models add** (the paper's version in brackets): random left-right flips and gradient
clipping at 1.0; a **grown decoder**, two full-resolution residual blocks added after the first phase (none); a
**mask-entropy** term, 0.005 × each pixel's entropy over slots (none); **self-distillation**, three rounds (textured:
one) adding 0.02 × the KL to a frozen best snapshot's masks averaged over 8 test-time passes (none); snapshots
picked on 256 validation scenes; textured starts from the sprites weights. Inference runs **more attention
iterations** and **merges duplicate slots**, both chosen on validation (3, no merging); *Dataset metrics* shows
both readouts. **FG-ARI**: adjusted Rand index on object pixels; **mIoU**: Hungarian-matched IoU with background.
Baseline: per-image k-means on colour + position. Textured scenes: Papa et al. (2022), procedural textures.
"""
SORTS = ["scene order", "worst FG-ARI first", "best FG-ARI first"]
PASSES = [1, 2, 4, 8]


def controls():
    """The settings (URL state) and their widgets."""
    s = url_state("slots", {"variant": "sprites", "n": 16, "seed": 0, "sort": SORTS[0], "scene": 0, "slots": 5,
                            "iters": model_report("sprites").iters, "merge": True, "passes": 1},
                  {"variant": list(VARIANTS), "sort": SORTS, "passes": list(PASSES), "n": (4, 64), "slots": (1, 10),
                   "iters": (1, 10), "seed": (0, 9_999)})
    c1, c2, c3, c4 = st.columns([1, 1, 1, 1.3])
    c1.selectbox("Scenes", list(VARIANTS), key=s.key("variant"), help="Flat-coloured sprites, or the same kind of "
                 "scenes with procedural textures inside objects and on the background.")
    c2.slider("How many", 4, 64, step=4, key=s.key("n"))
    c3.number_input("Seed", 0, 9_999, step=1, key=s.key("seed"), help="Held-out scenes: training used seeds ≥ 1,000,000.")
    c4.selectbox("Sort gallery by", SORTS, key=s.key("sort"))
    k1, k2, k3, k4 = st.columns(4)
    k1.slider("Slots at inference", 1, 10, key=s.key("slots"),
              help="Trained with 5 (up to 4 objects + background). Slot Attention accepts any number at test time.")
    k2.slider("Attention iterations", 1, 10, key=s.key("iters"),
              help="Trained with 3; the default is the number chosen on validation scenes after training.")
    k3.select_slider("Test-time passes", PASSES, key=s.key("passes"),
                     help="Average the alpha masks over slot initialisations, each on the image and its mirror "
                          "(slots matched between passes by their masks), at that many times the cost. 1 is the "
                          "model as trained and the card's headline.")
    k4.toggle("Merge duplicate slots", key=s.key("merge"),
              help="Slots whose masks are nearly the same (cosine similarity above the model's threshold, chosen "
                   "on validation scenes) count as one. The reconstruction is unchanged.")
    s.sync()
    return s


@st.cache_data(show_spinner="Segmenting scenes…", max_entries=16)
def scenes(variant: str, n: int, seed: int, slots: int, iters: int, merge: bool, passes: int):
    return segment_scenes(variant, n=n, seed=seed, num_slots=slots, iters=iters, merge=None if merge else False,
                          passes=passes)


def summary(rep, n: int) -> None:
    r = rep.report
    if r.missed:
        st.warning(f"This `{r.name}` checkpoint misses its targets: "
                   + ", ".join(f"{t['metric']} {t['value']:.3f} (target {t['direction']} {t['threshold']})"
                               for t in r.missed)
                   + f". Train on with `python -m backend.train {r.name} --resume`.", icon=":material/warning:")
    for col, key, label in zip(st.columns(2), ("fg_ari", "miou"), ("FG-ARI", "mIoU")):
        col.metric(f"{label}, these {n} scenes", f"{getattr(rep, 'mean_' + key):.3f}")
        col.metric(f"{label}, {r.n_test:,} held-out (card)", f"{r.metrics[key]:.3f}",
                   delta=f"{r.lead[key]:+.3f} vs k-means")


def gallery(rep, s) -> None:
    st.caption("Each tile: input · predicted slots over the input (white = segment borders) · ground truth. "
               "Sort by FG-ARI to find failures; open one in *Scene detail*.")
    order = {SORTS[1]: np.argsort(rep.fg_ari, kind="stable"), SORTS[2]: np.argsort(-rep.fg_ari, kind="stable")}
    cols = st.columns(4)
    for j, i in enumerate(order.get(s["sort"], range(len(rep.images)))):
        row = np.concatenate([rep.images[i], overlay(rep.images[i], rep.seg.labels[i]),
                              colorize(rep.labels[i], ground_truth=True)], 1)
        cols[j % 4].image(png_bytes(upscale(row, 4)), output_format="PNG", width="stretch",
                          caption=f"scene {i} · FG-ARI {rep.fg_ari[i]:.2f} · mIoU {rep.miou[i]:.2f}")
    rows = [{"scene": i, "fg_ari": round(float(rep.fg_ari[i]), 4), "miou": round(float(rep.miou[i]), 4),
             "objects": [o["shape"] for o in rep.objects[i]]} for i in range(len(rep.images))]
    settings = {k: s[k] for k in ("variant", "seed", "slots", "iters", "merge", "passes")} | {"scenes": rows}
    st.download_button("Download per-scene scores (JSON)", json.dumps(settings, indent=1),
                       file_name=f"slots-{s['variant']}-seed{s['seed']}.json", mime="application/json")


def detail(rep, s) -> None:
    n = len(rep.images)
    s["scene"] = s["scene"] if 0 <= s["scene"] < n else 0
    st.number_input("Scene", 0, n - 1, step=1, key=s.key("scene"), help="Index in the gallery (scene order).")
    i, f, seg = int(s["scene"]), 8, rep.seg
    pictures = [(rep.images[i], "input"), (seg.recon[i], "reconstruction"),
                (colorize(seg.labels[i]), "predicted slots (alpha masks)"),
                (colorize(rep.posterior[i].argmax(0)), "posterior given the image"),
                (colorize(rep.labels[i], ground_truth=True), "ground truth")]
    for col, (img, cap) in zip(st.columns(5), pictures):
        col.image(upscale(img, f), output_format="PNG", caption=cap, width="stretch")
    st.markdown(f"**FG-ARI {rep.fg_ari[i]:.3f} · mIoU {rep.miou[i]:.3f}** (posterior readout: FG-ARI "
                f"{rep.posterior_fg_ari[i]:.3f}) · objects: "
                + ", ".join(f"{o['shape']} (size {o['size']:.2f})" for o in rep.objects[i]))
    st.caption("The *posterior* readout is the same model read differently: each pixel goes to the slot with the "
               "highest alpha mask × likelihood of its colour under that slot's RGB. The gallery, the scores and "
               "the targets use the alpha masks, as the paper does. Below, one column per slot: its alpha mask, its "
               "masked reconstruction and its attention in the last iteration (slot order is arbitrary).")
    k = seg.masks.shape[1]
    for start in range(0, k, 5):
        for j, col in zip(range(start, min(k, start + 5)), st.columns(min(k, 5))):
            into = j if seg.merged_into is None else int(seg.merged_into[i, j])
            col.image(upscale(np.zeros((6, 6, 3), np.uint8) + colorize(np.array([[j]]))[0, 0], 4), width=24)
            col.image(upscale(mask_image(seg.masks[i, j]), f), output_format="PNG", width="stretch",
                      caption=f"slot {j} mask ({rep.slot_shares[i, j]:.0%} of pixels)" if into == j
                      else f"slot {j}: merged into slot {into}")
            col.image(upscale(seg.slot_recons[i, j], f), output_format="PNG", caption="masked recon", width="stretch")
            col.image(upscale(mask_image(seg.attn[i, j]), f), output_format="PNG", caption="attention",
                      width="stretch")
    strip = np.concatenate([img for img, cap in pictures if cap != "posterior given the image"], 1)
    st.download_button("Download input · recon · slots · truth (PNG)", png_bytes(upscale(strip, f)),
                       file_name=f"slots-{s['variant']}-seed{s['seed']}-scene{i}.png", mime="image/png")


def dataset(r, variant: str) -> None:
    st.markdown(f"**Held-out test set** ({r.n_test:,} scenes, seed {r.test_seed}, evaluated once for this checkpoint; "
                f"model at step {r.selected_step} of {r.steps}). Readout: {r.readout}")
    if r.comparison:
        st.dataframe(pd.DataFrame(r.comparison), hide_index=True, width="stretch")
        st.caption("Mean [95 % bootstrap interval over scenes]. *Shifted*: scenes from wider ranges than training.")
    st.dataframe(pd.DataFrame(r.table), hide_index=True, width="stretch")
    st.caption((f"Duplicate slots merged: slots whose masks have cosine similarity above {r.merge} count as one. "
                if r.merge else "") + "The coverage rows read each pixel's true "
               "anti-aliased coverage as masks (*majority*, or *objects first*); references, not bounds. Targets: "
               + ", ".join(f"{t['metric']} {t['direction']} {t['threshold']}" for t in r.targets)
               + ". The paper reports FG-ARI 0.913 on Multi-dSprites (500k steps).")
    n_hist = st.select_slider("Scenes for the histograms", [50, 100, 200], value=50, key="slots.hist_n")
    if st.toggle("Compute histograms (model and k-means on the same scenes)", key="slots.hist_on"):
        with running(f"Scoring {n_hist} held-out scenes", "slots.hist_cancel") as prog:
            st.session_state["slots.hist"] = dataset_metrics(variant, n=n_hist, seed=10_000, progress=prog)
    res = st.session_state.get("slots.hist")
    if res is None or res.variant != variant:
        return
    import plotly.graph_objects as go
    names = {"model": "Slot Attention", "posterior": "posterior readout", "kmeans": "k-means"}
    for col, (metric, label) in zip(st.columns(3), [("fg_ari", "FG-ARI"), ("miou", "mIoU"), ("mse", "MSE")]):
        fig = go.Figure()
        for key, name in names.items():
            if metric in res.scores[key]:
                fig.add_histogram(x=res.scores[key][metric], name=name, opacity=0.65, nbinsx=20)
        fig.update_layout(barmode="overlay", height=260, margin=dict(l=10, r=10, t=30, b=10), title=label,
                          legend=dict(orientation="h", y=-0.25))
        col.plotly_chart(fig, width="stretch", config={"displayModeBar": False})
    mean = {k: v["fg_ari"] for k, v in res.means.items()}
    st.caption(f"{res.n} held-out scenes, FG-ARI: model {mean['model']:.3f} (alpha masks; posterior readout "
               f"{mean['posterior']:.3f}), k-means {mean['kmeans']:.3f}, true coverage {mean['coverage']:.3f} by "
               f"majority, {mean['coverage_objects_first']:.3f} objects first.")


def probe(r, variant: str) -> None:
    st.markdown("A linear readout shared by all slots predicts each object's **shape** and **colour bin** (accuracy) "
                "and its **size** and **x, y** position (R²) from the slot matched to it (Hungarian matching of slot "
                "masks to object masks; 300 scenes to fit, 150 others to score). The untrained network of the same "
                "architecture is the lower bound.")
    st.dataframe(pd.DataFrame([{"slots from": f"{key} model", **scores} for key, scores in r.probe.items()]),
                 hide_index=True, width="stretch")
    snaps = pd.DataFrame(r.snapshots)
    if snaps.empty or "probe_mean" not in snaps:
        return
    import plotly.express as px
    fig = px.scatter(snaps, x="val_fg_ari", y="probe_mean", color="step", render_mode="svg",
                     labels={"val_fg_ari": "validation FG-ARI", "probe_mean": "probe score (mean of acc./R²)"},
                     title="Downstream probe vs segmentation quality across training snapshots")
    fig.update_layout(height=380, margin=dict(l=10, r=10, t=40, b=10))
    st.plotly_chart(fig, width="stretch", config={"displayModeBar": False})
    st.caption("Each point is a training snapshot, coloured by its step. Dittadi et al. (ICML 2022) report that "
               "downstream property prediction tracks segmentation quality; here you can see whether it does.")
    st.download_button("Download snapshot table (CSV)", snaps.to_csv(index=False),
                       file_name=f"slots-{variant}-snapshots.csv", mime="text/csv")


def upload(s) -> None:
    st.markdown("Upload a PNG or JPEG (up to 16 megapixels). It is resized to the model's 32×32 input, segmented, and the "
                "masks are shown at the image's size (longer side capped at 512 px). The model was trained on simple "
                "flat or textured shapes: expect coarse results on photos.")
    up = st.file_uploader("Image", type=["png", "jpg", "jpeg", "bmp", "gif", "webp"], key="slots.upload")
    if up is None:
        return
    try:
        out = segment_upload(up, s["variant"], num_slots=s["slots"], iters=s["iters"],
                             merge=None if s["merge"] else False, passes=s["passes"])
    except (ValueError, CheckpointError) as e:
        return show_error(e, up.name)
    img, f = out.image, max(1, 256 // max(out.image.shape[:2]))
    for col, pic, cap in zip(st.columns(3), (img, out.seg.recon[0], overlay(img, out.labels)),
                             (f"your image ({img.shape[1]}×{img.shape[0]})", "reconstruction", "slots")):
        col.image(upscale(pic, f), output_format="PNG", caption=cap, width="stretch")
    st.caption("Pixels per slot: " + ", ".join(f"slot {j} {v:.0%}" for j, v in enumerate(out.slot_shares)))
    st.download_button("Download segmentation (PNG)", png_bytes(colorize(out.labels)),
                       file_name="slots-segmentation.png", mime="image/png")


header("Slots", "An unsupervised autoencoder whose latent is a set of **slots** that compete for pixels: each slot "
       "ends up describing one object. Browse its masks and reconstructions on held-out scenes, score them against "
       "the true objects, check what the slots know about each object, or segment your own image.",
       "Locatello et al., Object-Centric Learning with Slot Attention (NeurIPS 2020)", "https://arxiv.org/abs/2006.15055",
       HOW)
try:
    s = controls()
    rep = scenes(s["variant"], int(s["n"]), int(s["seed"]), int(s["slots"]), int(s["iters"]), bool(s["merge"]),
                 int(s["passes"]))
except (ValueError, CheckpointError) as e:
    show_error(e)
    st.stop()
summary(rep, int(s["n"]))
t_gal, t_detail, t_metrics, t_probe, t_upload = st.tabs(
    ["Gallery", "Scene detail", "Dataset metrics", "Downstream probe", "Your image"])
with t_gal:
    gallery(rep, s)
with t_detail:
    detail(rep, s)
with t_metrics:
    dataset(rep.report, s["variant"])
with t_probe:
    probe(rep.report, s["variant"])
with t_upload:
    upload(s)
st.divider()
st.caption(f"Share these settings: `{s.link()}` · Model card: `{rep.report.name}` ({rep.report.steps} steps, "
           f"{rep.report.wall_time_s / 60:.0f} min on {rep.report.device}).")
