"""Video infill: choose the known frames (and regions) of a clip; a random-mask video diffusion model fills the rest."""

from __future__ import annotations

import hashlib
import io
import json

import numpy as np
import streamlit as st

from backend.video import (
    BASELINES,
    PRESETS,
    box_mask,
    clip_from_upload,
    filmstrip,
    generated_clip,
    gif_bytes,
    infill,
    load_model,
    png_bytes,
    preset_known,
    side_by_side,
    task_table,
    webm_bytes,
)
from ui.common import header, running, show_error
from ui.state import url_state

HOW = """
- **Training (RaMViD).** Each training clip gets a random set of *given* frames (1 … T−1 of them, a uniform number at
uniform positions; none with probability p). All frames are noised, the given ones put back **clean**; the loss covers
the others: $x_{in} = m\\cdot x_t + (1-m)\\cdot x_0,\\ L = \\frac{\\sum m\\,(v - \\hat v(x_{in}, m, t))^2}{\\sum m}$.
- **Sampling.** DDIM from noise, the given pixels written back clean before every network call (so they come out
exactly as given); optional RePaint-style resampling re-noises one step and denoises again.
- **Our model.** A shrunk (2+1)D U-Net, v-prediction, cosine schedule, EMA weights. **Beyond the paper** (RaMViD: off):
`mask_channel`/`p_region` (a mask input and rectangle masks, to regenerate a region); the shipped weights: 20,000 steps
with `mask_mix="tasks"` (60 % strides, prefixes or both ends; p = 0.1), then 80 with RaMViD's masks (p = 0.25).
"""

def controls(T: int, R: int):
    """The clip, known-frame and sampler widgets; returns the URL-backed settings and the upload (or None)."""
    s = url_state("video", {
        "source": "generated", "kind": "bouncing", "clip_seed": 0, "start": 0, "preset": "upsampling",
        "given": [int(i) for i in np.where(preset_known("upsampling", T))[0]], "region": False,
        "box_x": (10, 22), "box_y": (10, 22), "region_frames": list(range(T)),
        "steps": 25, "eta": 0.0, "seed": 0, "samples": 1, "resample": 1}, {
        "source": ["generated", "upload"], "kind": ["bouncing", "digits"], "clip_seed": (0, 999_999), "start": (0, 10**6),
        "preset": list(PRESETS), "given": (0, T - 1), "box_x": (0, R), "box_y": (0, R), "region_frames": (0, T - 1),
        "steps": (1, 100), "eta": (0.0, 1.0), "seed": (0, 999_999), "samples": (1, 4), "resample": [1, 2, 3]})

    def apply_preset():
        s["given"] = [int(i) for i in np.where(preset_known(s["preset"], T))[0]]

    c_src, c_task, c_samp, upload = *st.columns([1.1, 1.3, 1]), None
    with c_src.container(border=True):
        st.markdown("**Clip**")
        st.radio("Source", ["generated", "upload"], key=s.key("source"), horizontal=True,
                 format_func={"generated": "Generated", "upload": "Upload a video"}.get)
        if s["source"] == "generated":
            st.selectbox("Kind", ["bouncing", "digits"], key=s.key("kind"),
                         format_func={"bouncing": "Bouncing sprites (training distribution)",
                                      "digits": "Moving handwritten digits (unseen by the model)"}.get)
            st.number_input("Clip seed", 0, 999_999, step=1, key=s.key("clip_seed"),
                            help="Clips are generated from this seed; training never used seeds below 2³¹.")
        else:
            upload = st.file_uploader("Video (mp4, webm, gif, avi)", key="video.upload",
                                      type=["mp4", "webm", "gif", "avi", "mov", "mkv"])
            st.number_input(f"First frame (the model takes {T} frames from here)", 0, 1_000_000, step=1,
                            key=s.key("start"))
            st.caption(f"Frames are centre-cropped to a square and resized to {R}×{R}.")
    with c_task.container(border=True):
        st.markdown("**Known frames**")
        st.selectbox("Preset", list(PRESETS), key=s.key("preset"), format_func=PRESETS.get, on_change=apply_preset)
        st.pills("Given frames (click to toggle; the others are generated)", list(range(T)), selection_mode="multi",
                 key=s.key("given"))
        st.toggle("Also regenerate a rectangle (extension of the paper)", key=s.key("region"))
        if s["region"]:
            ca, cb = st.columns(2)
            ca.slider("Rectangle x", 0, R, key=s.key("box_x"))
            cb.slider("Rectangle y", 0, R, key=s.key("box_y"))
            st.multiselect("Frames with the rectangle", list(range(T)), key=s.key("region_frames"))
    with c_samp.container(border=True):
        st.markdown("**Sampler**")
        st.slider("DDIM steps", 1, 100, key=s.key("steps"))
        st.slider("η (0 = deterministic DDIM, 1 = ancestral)", 0.0, 1.0, step=0.1, key=s.key("eta"))
        ca, cb = st.columns(2)
        ca.number_input("Seed", 0, 999_999, step=1, key=s.key("seed"))
        cb.number_input("Samples", 1, 4, step=1, key=s.key("samples"))
        st.select_slider("Resampling (RePaint jumps per step)", [1, 2, 3], key=s.key("resample"))
    s.sync()
    return s, upload


def load_clip(s, upload, T: int, R: int):
    """(clip, true sprite centres or None, an id of the clip for caching)."""
    if s["source"] == "generated":
        clip, centers = generated_clip(s["kind"], int(s["clip_seed"]), T, R)
        return clip, centers, f"gen:{s['kind']}:{int(s['clip_seed'])}"
    if upload is None:
        st.info("Upload a short video to infill it, or switch the source back to a generated clip.")
        st.stop()
    try:
        clip, note = clip_from_upload(raw := upload.getvalue(), start=int(s["start"]), num_frames=T, resolution=R)
    except ValueError as e:
        show_error(e, upload.name)
        st.stop()
    if note:
        st.caption(f"Upload: {note}.")
    return clip, None, f"upload:{hashlib.sha1(raw).hexdigest()}:{int(s['start'])}"


def request(s, clip, centers, clip_id: str, T: int, R: int):
    """The one backend call: samples when asked (or for the default view), else baselines; (result, settings key)."""
    known = np.isin(np.arange(T), s["given"] or [])
    opts = {"steps": int(s["steps"]), "seed": int(s["seed"]), "eta": float(s["eta"]), "resample": int(s["resample"])}
    try:
        region = box_mask(T, R, s["region_frames"] or range(T), s["box_x"], s["box_y"]) if s["region"] else None
        box = [s["box_x"], s["box_y"], sorted(s["region_frames"] or [])] if s["region"] else None
        key = json.dumps([clip_id, known.tolist(), int(s["samples"]), opts, box], sort_keys=True, default=list)
        nfe = opts["steps"] * opts["resample"]
        clicked = st.button(f"Generate ({int(s['samples'])} sample{'s' * (int(s['samples']) > 1)}, {nfe} network "
                            f"evaluations each)", type="primary", key="video.generate")
        kept = st.session_state.get("video._result")
        fresh = kept is not None and kept["key"] == key
        default = all(s[k] == v for k, v in s.defaults.items() if k not in ("box_x", "box_y", "region_frames"))
        if clicked or (default and not fresh):  # the default view shows a sample without a click
            with running("Sampling", "video.cancel") as p:
                result = infill(clip, known, int(s["samples"]), region=region, centers=centers, progress=p, **opts)
                st.session_state["video._result"] = kept = {"key": key, "result": result}
        if kept is not None and kept["key"] == key:
            return kept["result"], key
        st.info("Press **Generate** to sample with these settings. The baselines below are already up to date.")
        return infill(clip, known, 0, region=region, centers=centers, **opts), key
    except ValueError as e:
        show_error(e)
        st.stop()


def show_strips(r) -> None:
    st.subheader("Clip and known frames")
    st.image(filmstrip(r.clip), width="stretch", caption="Ground truth (the model never sees the pixels it generates)")
    st.image(filmstrip(r.clip, r.generated), caption="Given to the model (hatched = to generate); frames 0 … "
             f"{len(r.clip) - 1}, left to right", width="stretch")
    if r.unconditional:
        st.info("Nothing is given: the model draws unconditional clips (a share p of its training clips had no "
                "given frame). Scores against the clip above are then only a reference.")
    for i, smp in enumerate(r.samples):
        st.image(filmstrip(smp), width="stretch", caption=f"Sample {i + 1} (seed {r.settings['seed']}, "
                 f"{r.settings['steps']} DDIM steps, η = {r.settings['eta']:.1f})")
    st.image(filmstrip(r.baselines["linear"]), width="stretch",
             caption="Baseline: linear interpolation between given frames (copy beyond the ends)")
    st.image(filmstrip(r.baselines["nearest"]), caption="Baseline: copy the nearest given frame", width="stretch")


def _encode(frames: np.ndarray) -> tuple[bytes, str]:
    webm = webm_bytes(frames, fps=4, scale=6)
    return (webm, "webm") if webm else (gif_bytes(frames, fps=4, scale=6), "gif")


def show_animation(r) -> None:
    shown = [("ground truth", r.clip), ("given", np.where(r.generated[..., None], 40, r.clip).astype(np.uint8))]
    shown += [("sample 1", r.samples[0])] if len(r.samples) else []
    shown += [("linear interpolation", r.baselines["linear"])]
    anim = side_by_side([c for _, c in shown])
    st.subheader("Animation")
    st.caption(" | ".join(label for label, _ in shown) + " (loops, 4 frames per second)")
    data, kind = _encode(anim)
    if kind == "webm":
        st.video(data, format="video/webm", loop=True, autoplay=True, muted=True)
    else:
        st.image(data, caption="(GIF: no WebM encoder on this server)")


def show_scores(r, card: dict) -> None:
    import plotly.graph_objects as go

    st.subheader("Scores on the generated pixels")
    cols = st.columns(4)
    if not len(r.samples):
        cols[0].metric("Model PSNR", "–", help="Press Generate")
    else:
        cols[0].metric("Model PSNR (mean of samples)", f"{r.model_psnr:.2f} dB",
                       delta=f"{r.model_psnr - r.scores['linear'].psnr:+.2f} dB vs linear")
    if r.diversity is not None:
        cols[0].caption(f"Best of {len(r.samples)}: {r.best_of_psnr:.2f} dB; diversity (RMS) {r.diversity:.1f}")
    for col, (b, label) in zip(cols[1:], BASELINES.items()):
        col.metric(label.capitalize(), f"{r.scores[b].psnr:.2f} dB")
    if r.scores["linear"].centroid_px is not None:
        cols = st.columns(4)
        if len(r.samples):
            cols[0].metric("Model centroid error", f"{r.model_centroid_px:.2f} px",
                           help="Distance from each true sprite centre to its matched blob, on generated frames")
        for col, (b, label) in zip(cols[1:], BASELINES.items()):
            col.metric(f"{label.capitalize()}: centroid", f"{r.scores[b].centroid_px:.2f} px")
    fig = go.Figure()
    for name, sc in r.scores.items():
        fig.add_trace(go.Scatter(x=list(range(len(r.clip))), name=BASELINES.get(name, name), mode="lines+markers",
                                 y=[None if np.isnan(v) else float(v) for v in sc.per_frame_psnr],
                                 line={"width": 3 if name.startswith("sample") else 1.5}))
    for g in np.where(r.known)[0]:
        fig.add_vline(x=int(g), line={"color": "rgba(120,120,120,0.35)", "dash": "dot"})
    fig.update_layout(height=320, margin={"l": 10, "r": 10, "t": 30, "b": 10}, xaxis_title="frame (dotted = given)",
                      yaxis_title="PSNR (dB) on generated pixels", title="Per-frame PSNR")
    st.plotly_chart(fig, width="stretch", key="video.psnr_chart")
    if rows := task_table(card):
        st.markdown("**Model card, test clips:** PSNR gain over each task's baseline, 95 % interval over clips")
        st.dataframe(rows, hide_index=True, width="stretch")
        st.caption(f"{card.get('readout', '')} See the Models page.")


def show_downloads(r, key: str, link: str) -> None:
    st.subheader("Downloads")
    d1, d2, d3 = st.columns(3)
    if len(r.samples):
        data, kind = _encode(r.samples[0])
        d1.download_button(f"Sample 1 ({kind.upper()})", data, f"infill.{kind}", key="video.dl_webm")
        strips = np.concatenate([filmstrip(x) for x in (r.clip, *r.samples)] + [filmstrip(r.clip, r.generated)])
        d2.download_button("All strips (PNG)", png_bytes(strips), "infill.png", "image/png", key="video.dl_png")
        buf = io.BytesIO()
        np.savez_compressed(buf, clip=r.clip, given=r.known, generate_mask=r.generated, samples=r.samples,
                            settings=np.array(key))
        d3.download_button("Arrays (NPZ)", buf.getvalue(), "infill.npz", "application/octet-stream", key="video.dl_npz")
    else:
        d1.caption("Generate a sample to download it.")
    st.expander("Link to these settings").code(link, language=None)


def main() -> None:
    header("Video infill", "Pick which frames of a short clip are known; one video diffusion model, trained with "
           "random conditioning masks, generates the rest: prediction, infilling, frame-rate upsampling or "
           "unconditional clips, all from the same weights.",
           "Höppe, Mehrjou, Bauer, Nielsen, Dittadi: Diffusion Models for Video Prediction and Infilling (TMLR 2022)",
           "https://arxiv.org/abs/2206.07696", HOW)
    try:
        model = load_model("bouncing")  # cached once per process
    except ValueError as e:  # CheckpointError is a ValueError
        show_error(e)
        st.stop()
    T, R = model.num_frames, model.resolution
    s, upload = controls(T, R)
    result, key = request(s, *load_clip(s, upload, T, R), T, R)
    show_strips(result)
    show_animation(result)
    show_scores(result, model.card)
    show_downloads(result, key, s.link())


main()
