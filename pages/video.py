"""Video infill: choose the known frames (and regions) of a clip; a random-mask video diffusion model fills the rest."""

from __future__ import annotations

import hashlib
import io
import json

import numpy as np
import streamlit as st

from ui.common import header, running, show_error
from ui.state import url_state

header(
    "Video infill",
    "Pick which frames of a short clip are known; one video diffusion model, trained with random "
    "conditioning masks, generates the rest: prediction, infilling, frame-rate upsampling or "
    "unconditional clips, all from the same weights.",
    "Höppe, Mehrjou, Bauer, Nielsen, Dittadi: Diffusion Models for Video Prediction and Infilling (TMLR 2022)",
    "https://arxiv.org/abs/2206.07696",
    """
**Training (RaMViD).** Each training clip gets a random set of *given* frames (anywhere, 1 … T−1 of
them; none with probability p). All frames are noised, the given ones are put back **clean**, and the loss
covers only the frames to generate:

$x_{in} = m\\cdot x_t + (1-m)\\cdot x_0,\\qquad L = \\frac{\\sum m\\,(v - \\hat v(x_{in}, m, t))^2}{\\sum m}$

**Sampling.** DDIM from pure noise; before every network call the given pixels are written back clean, so
they come out exactly as given. Optional RePaint-style resampling re-noises one step and denoises again.

**Our model.** A shrunk (2+1)D-convolution U-Net (space downsampled, time never), space-time attention
only at 4×4, v-prediction with a cosine schedule, EMA weights, trained on procedural bouncing sprites.
**Extension of the paper:** RaMViD conditions on whole frames only; this model also gets a per-pixel
mask channel and was trained with random rectangle masks, so a region inside frames can be regenerated.
""",
)


@st.cache_resource(show_spinner="Loading the video model…")
def _model():
    from backend.video import load_model

    return load_model("bouncing")


try:
    model = _model()
except ValueError as e:  # CheckpointError is a ValueError
    show_error(e)
    st.stop()

T, R = model.num_frames, model.resolution

from backend.video.api import PRESETS, box_mask, clip_from_upload, preset_known  # noqa: E402
from backend.video.metrics import BASELINES, baseline, blob_centroids, centroid_error, per_frame_psnr  # noqa: E402

DEFAULTS = {
    "source": "generated", "kind": "bouncing", "clip_seed": 0, "start": 0,
    "preset": "upsampling", "given": [int(i) for i in np.where(preset_known("upsampling", T))[0]],
    "region": False, "box_x": (10, 22), "box_y": (10, 22), "region_frames": list(range(T)),
    "steps": 25, "eta": 0.0, "seed": 0, "samples": 1, "resample": 1,
}
s = url_state("video", DEFAULTS)


def _apply_preset():
    s["given"] = [int(i) for i in np.where(preset_known(s["preset"], T))[0]]


# ---------------------------------------------------------------- controls
c_src, c_task, c_samp = st.columns([1.1, 1.3, 1])
with c_src.container(border=True):
    st.markdown("**Clip**")
    st.radio("Source", ["generated", "upload"], key=s.key("source"), horizontal=True,
             format_func=lambda v: {"generated": "Generated", "upload": "Upload a video"}[v])
    upload = None
    if s["source"] == "generated":
        st.selectbox("Kind", ["bouncing", "digits"], key=s.key("kind"),
                     format_func=lambda v: {"bouncing": "Bouncing sprites (training distribution)",
                                            "digits": "Moving handwritten digits (unseen by the model)"}[v])
        st.number_input("Clip seed", 0, 999_999, step=1, key=s.key("clip_seed"),
                        help="Clips are generated from this seed; training never used seeds below 2³¹.")
    else:
        upload = st.file_uploader("Video (mp4, webm, gif, avi)", type=["mp4", "webm", "gif", "avi", "mov", "mkv"],
                                  key="video.upload")
        st.number_input(f"First frame (the model takes {T} frames from here)", 0, 1_000_000, step=1,
                        key=s.key("start"))
        st.caption(f"Frames are centre-cropped to a square and resized to {R}×{R}.")
with c_task.container(border=True):
    st.markdown("**Known frames**")
    st.selectbox("Preset", list(PRESETS), key=s.key("preset"), format_func=PRESETS.get, on_change=_apply_preset)
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


# ---------------------------------------------------------------- the clip
@st.cache_data(max_entries=32, show_spinner=False)
def _generated(kind: str, seed: int):
    from backend.video import make_videos

    clips, trajs = make_videos(1, seed=seed, kind=kind, num_frames=T, res=R, return_trajectories=True)
    return clips[0], trajs[0].centers


@st.cache_data(max_entries=8, show_spinner=False)
def _uploaded(_raw: bytes, digest: str, start: int):
    return clip_from_upload(_raw, start=start, num_frames=T, resolution=R)


centers, note = None, ""
if s["source"] == "generated":
    clip, centers = _generated(s["kind"], int(s["clip_seed"]))
    clip_id = f"gen:{s['kind']}:{int(s['clip_seed'])}"
    if s["kind"] != "bouncing":
        centers = None  # centroid error is defined for the sprite clips only
else:
    if upload is None:
        st.info("Upload a short video to infill it, or switch the source back to a generated clip.")
        st.stop()
    raw = upload.getvalue()
    digest = hashlib.sha1(raw).hexdigest()
    try:
        clip, note = _uploaded(raw, digest, int(s["start"]))
    except ValueError as e:
        show_error(e)
        st.stop()
    clip_id = f"upload:{digest}:{int(s['start'])}"
    if note:
        st.caption(f"Upload: {note}.")

given = sorted(int(i) for i in (s["given"] or []))
known = np.zeros(T, bool)
known[given] = True
region = None
if s["region"]:
    try:
        region = box_mask(T, R, s["region_frames"] or range(T), s["box_x"], s["box_y"])
    except ValueError as e:
        show_error(e)
        st.stop()
gen = np.repeat(~known[:, None, None], R, 1).repeat(R, 2)
if region is not None:
    gen = gen | region
unconditional = bool(gen.all())
if not gen.any():
    st.warning("Every frame is given, so there is nothing to generate: toggle off some frames, or add a rectangle.")
    st.stop()

SCALE = 4


def strip(frames: np.ndarray, gen_mask: np.ndarray | None = None, gap: int = 2) -> np.ndarray:
    """Frames side by side (upscaled, nearest), with generated pixels dimmed when a mask is given."""
    from backend.core.media import upscale

    fr = frames.astype(np.float32)
    if gen_mask is not None:
        hatch = ((np.indices((R, R)).sum(0) // 2) % 2)[None, ..., None] * 30 + 40
        fr = np.where(gen_mask[..., None], hatch, fr)
    big = upscale(fr.astype(np.uint8), SCALE)
    pad = np.full((big.shape[1], gap, 3), 255, np.uint8)
    return np.concatenate([x for f in big for x in (f, pad)][:-1], axis=1)


st.subheader("Clip and known frames")
st.image(strip(clip), caption="Ground truth (the model never sees the pixels it generates)",
         output_format="PNG", width="stretch")
st.image(strip(clip, gen), caption="Given to the model (hatched = to generate); frames 0 … "
         f"{T - 1}, left to right", output_format="PNG", width="stretch")
if unconditional:
    st.info("Nothing is given: the model draws unconditional clips (its training included p = 0.1 of "
            "clips with no given frame). Scores against the clip above are then only a reference.")

# ---------------------------------------------------------------- sampling
settings = {"clip": clip_id, "given": given, "region": None if region is None else [s["box_x"], s["box_y"],
            sorted(s["region_frames"] or [])], "steps": int(s["steps"]), "eta": float(s["eta"]),
            "seed": int(s["seed"]), "samples": int(s["samples"]), "resample": int(s["resample"])}
key = json.dumps(settings, sort_keys=True, default=list)
is_default = all(s[k] == v for k, v in DEFAULTS.items() if k not in ("box_x", "box_y", "region_frames"))


def _sample(progress=None) -> np.ndarray:
    if unconditional:
        return model.generate(int(s["samples"]), steps=int(s["steps"]), seed=int(s["seed"]), eta=float(s["eta"]),
                              progress=progress)
    return model.infill_samples(clip, known, int(s["samples"]), steps=int(s["steps"]), seed=int(s["seed"]),
                                region_mask=region, eta=float(s["eta"]), resample=int(s["resample"]),
                                progress=progress)


@st.cache_data(max_entries=4, show_spinner="Sampling the default example…")
def _default_sample(settings_key: str) -> np.ndarray:
    return _sample()


nfe = int(s["steps"]) * int(s["resample"])
clicked = st.button(f"Generate ({int(s['samples'])} sample{'s' * (int(s['samples']) > 1)}, {nfe} network "
                    f"evaluations each)", type="primary", key="video.generate")
result = st.session_state.get("video._result")
if clicked:
    try:
        with running("Sampling", "video.cancel") as p:
            st.session_state["video._result"] = result = {"key": key, "samples": _sample(p)}
    except ValueError as e:
        show_error(e)
elif (result is None or result["key"] != key) and is_default:
    ex = model.example
    if ex is not None and ex["sample"].shape == clip.shape:
        result = {"key": key, "samples": ex["sample"][None]}  # precomputed by the trainer for these settings
    else:
        result = {"key": key, "samples": _default_sample(key)}
if result is not None and result["key"] != key:
    result = None
if result is None:
    st.info("Press **Generate** to sample with these settings. The baselines below are already up to date.")

# ---------------------------------------------------------------- results
bases = {b: baseline(clip, known, b, region) for b in BASELINES}
rows = []
if result is not None:
    samples = result["samples"]
    for i, smp in enumerate(samples):
        st.image(strip(smp), caption=f"Sample {i + 1} (seed {int(s['seed'])}, {int(s['steps'])} DDIM steps, "
                 f"η = {float(s['eta']):.1f})", output_format="PNG", width="stretch")
else:
    samples = np.zeros((0, T, R, R, 3), np.uint8)
st.image(strip(bases["linear"]), caption="Baseline: linear interpolation between given frames (copy beyond the ends)",
         output_format="PNG", width="stretch")
st.image(strip(bases["nearest"]), caption="Baseline: copy the nearest given frame", output_format="PNG",
         width="stretch")


@st.cache_data(max_entries=16, show_spinner=False)
def _webm(_frames: np.ndarray, key: str) -> bytes | None:
    from backend.core.media import webm_bytes

    return webm_bytes(_frames, fps=4, scale=6)


@st.cache_data(max_entries=16, show_spinner=False)
def _gif(_frames: np.ndarray, key: str) -> bytes:
    from backend.core.media import gif_bytes

    return gif_bytes(_frames, fps=4, scale=6)


def _side_by_side(*clips_) -> np.ndarray:
    pad = np.full((T, R, 2, 3), 255, np.uint8)
    return np.concatenate([x for c in clips_ for x in (c, pad)][:-1], axis=2)


shown = [clip, np.where(gen[..., None], 40, clip).astype(np.uint8)]
labels = ["ground truth", "given"]
if len(samples):
    shown.append(samples[0])
    labels.append("sample 1")
shown.append(bases["linear"])
labels.append("linear interpolation")
anim = _side_by_side(*shown)
st.subheader("Animation")
st.caption(" | ".join(labels) + " (loops, 4 frames per second)")
anim_key = key + str(len(samples))
webm = _webm(anim, anim_key)
if webm:
    st.video(webm, format="video/webm", loop=True, autoplay=True, muted=True)
else:
    st.image(_gif(anim, anim_key), caption="(GIF: no WebM encoder on this server)")

# ---------------------------------------------------------------- numbers
st.subheader("Scores on the generated pixels")
scored = np.where(gen.any((1, 2)))[0]
curves = {}
for i, smp in enumerate(samples):
    curves[f"sample {i + 1}"] = per_frame_psnr(smp, clip, gen)
for b, label in BASELINES.items():
    curves[label] = per_frame_psnr(bases[b], clip, gen)


def _mean_psnr(pred):
    from backend.video.metrics import psnr

    return psnr(pred, clip, gen)


cols = st.columns(4)
if len(samples):
    vals = [_mean_psnr(x) for x in samples]
    cols[0].metric("Model PSNR (mean of samples)", f"{np.mean(vals):.2f} dB",
                   delta=f"{np.mean(vals) - _mean_psnr(bases['linear']):+.2f} dB vs linear")
    if len(samples) > 1:
        from backend.video.metrics import diversity

        cols[0].caption(f"Best of {len(samples)}: {max(vals):.2f} dB; diversity (RMS) {diversity(samples, gen):.1f}")
else:
    cols[0].metric("Model PSNR", "–", help="Press Generate")
for col, (b, label) in zip(cols[1:], BASELINES.items()):
    col.metric(label.capitalize(), f"{_mean_psnr(bases[b]):.2f} dB")
if centers is not None:
    def _cerr(pred):
        return float(np.mean([centroid_error(pred[t], centers[t]) for t in scored]))

    c = st.columns(4)
    if len(samples):
        c[0].metric("Model centroid error", f"{np.mean([_cerr(x) for x in samples]):.2f} px",
                    help="Distance from each true sprite centre to its matched blob, on generated frames")
    for col, (b, label) in zip(c[1:], BASELINES.items()):
        col.metric(f"{label.capitalize()}: centroid", f"{_cerr(bases[b]):.2f} px")
    _ = blob_centroids  # (same blob detector as the model card's evaluation)

import plotly.graph_objects as go  # noqa: E402

fig = go.Figure()
for name, ys in curves.items():
    fig.add_trace(go.Scatter(x=list(range(T)), y=[None if np.isnan(v) else float(v) for v in ys], name=name,
                             mode="lines+markers", line={"width": 3 if name.startswith("sample") else 1.5}))
for g in given:
    fig.add_vline(x=g, line={"color": "rgba(120,120,120,0.35)", "dash": "dot"})
fig.update_layout(height=320, margin={"l": 10, "r": 10, "t": 30, "b": 10}, xaxis_title="frame (dotted = given)",
                  yaxis_title="PSNR (dB) on generated pixels", title="Per-frame PSNR")
st.plotly_chart(fig, width="stretch", key="video.psnr_chart")

card = model.card or {}
m, b = card.get("metrics", {}), card.get("baselines", {})
if m:
    st.caption(
        f"Held-out model card ({card.get('n_eval', '?')} unseen clips, {card.get('eval_sampler', '')}): "
        f"every 4th frame given: model {m.get('interp4_psnr', float('nan')):.2f} dB vs linear interpolation "
        f"{b.get('interp4_psnr_linear', float('nan')):.2f} dB and nearest-frame copy "
        f"{b.get('interp4_psnr_nearest', float('nan')):.2f} dB; first 4 given, next 4 frames: model "
        f"{m.get('predict4_psnr', float('nan')):.2f} dB vs last-frame copy {b.get('predict4_psnr_last', float('nan')):.2f} dB. "
        "See the Models page for the full card."
    )

# ---------------------------------------------------------------- downloads
st.subheader("Downloads")
d1, d2, d3 = st.columns(3)
if len(samples):
    out_webm = _webm(samples[0], key + ":s0")
    if out_webm:
        d1.download_button("Sample 1 (WebM)", out_webm, "infill.webm", "video/webm", key="video.dl_webm")
    from backend.core.media import png_bytes

    d2.download_button("All strips (PNG)", png_bytes(np.concatenate([strip(clip), strip(clip, gen)] +
                       [strip(x) for x in samples], axis=0)), "infill.png", "image/png", key="video.dl_png")
    buf = io.BytesIO()
    np.savez_compressed(buf, clip=clip, given=known, generate_mask=gen, samples=samples,
                        settings=np.array(key))
    d3.download_button("Arrays (NPZ)", buf.getvalue(), "infill.npz", "application/octet-stream", key="video.dl_npz")
else:
    d1.caption("Generate a sample to download it.")
with st.expander("Link to these settings"):
    st.code(s.link(), language=None)
