"""DiffEnc: a diffusion model with a learned, time-dependent encoder, against VDM, in bits/dim on digits."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import plotly.graph_objects as go
import streamlit as st

from backend.core import png_bytes, upscale
from backend.diffenc import (
    MODELS,
    bpd_all,
    comparison,
    encoder_view,
    loss_curves,
    ood_bpd,
    ready,
    samples_all,
    test_digits,
    to_digit,
    to_u8,
)
from ui.common import header, running, show_error, was_cancelled
from ui.state import url_state

PAGE = "diffenc"
SCALE = 8

header(
    "DiffEnc: diffusion with a learned encoder",
    "A variational diffusion model whose data are first passed through a **learned, time-dependent encoder**: "
    "see what the encoder does to a digit as noise grows, and compare likelihoods (bits/dim) with VDM.",
    "Nielsen, Christensen, Dittadi, Winther: DiffEnc: Variational Diffusion with a Learned Encoder (ICLR 2024)",
    "https://arxiv.org/abs/2310.19789",
    r"""
1. **VDM** (Kingma et al. 2021): $z_t = \alpha_t x + \sigma_t \varepsilon$ with a fixed linear log-SNR
   $-\gamma_t$, $\gamma_t$ from $-13.3$ to $5$, $\alpha_t^2=\mathrm{sigmoid}(-\gamma_t)$; a U-Net predicts
   $v=\alpha_t\varepsilon-\sigma_t x$. Loss = ELBO = reconstruction (256-level decoder at $t=0$) + latent
   (KL to $N(0,I)$ at $t=1$) + continuous-time diffusion loss $\tfrac12\gamma'\alpha_t^2\|v-\hat v\|^2$.
2. **DiffEnc** replaces $x$ by $x_\phi(x,t)=x+\sigma_t^2\,(y_\phi(x,t)-x)$, $y_\phi$ a small net ending in a
   zero-initialised $\tanh$ (so at initialisation $x_\phi=\alpha_t^2x$). The diffusion loss gains the encoder's
   time derivative: $\tfrac12\gamma'\alpha_t^2\|v-\hat v+\sigma_t(\alpha_t^2(y-x)+\partial y/\partial\gamma)\|^2$,
   with $\partial y/\partial\gamma$ by `torch.func.jvp` (derived here from the reverse SDE; the model's
   output is its guess of $x_t-\partial x_t/\partial\gamma$). Latent and reconstruction terms use the encoded $x$.
3. **Size-matched VDM**: a wider score network with DiffEnc's parameter count, the fair comparison.
4. All three are scored with the same $(t,\varepsilon)$ draws per test image (common random numbers), so the
   paired gap DiffEnc − VDM has a small standard error.
""",
)

DEFAULTS = {"index": 0, "t": 0.5, "steps": 100, "seed": 0, "repeats": 8}
s = url_state(PAGE, DEFAULTS, {"index": (0, 999), "t": (0.0, 1.0), "steps": [25, 50, 100, 200, 500],
                               "seed": (0, 10_000), "repeats": [1, 2, 4, 8, 16]})


@st.cache_data(show_spinner="Sampling 16 digits per model…", max_entries=8)
def _samples(steps: int, seed: int):
    return samples_all(16, steps, seed)


def _grid(imgs: np.ndarray, cols: int = 8) -> np.ndarray:
    rows = [np.concatenate(list(imgs[i:i + cols]), 1) for i in range(0, len(imgs), cols)]
    return np.concatenate(rows, 0)


def encoder_section():
    """The t slider with x, x_phi, y and the amplified learned part; the strip of encodings over t."""
    c1, c2 = st.columns([1, 2])
    c1.number_input("Test digit #", 0, 999, step=1, key=s.key("index"), help="One of the 1,000 held-out test digits.")
    c2.slider("Time t (log-SNR falls from 13.3 at t = 0 to -5 at t = 1)", 0.0, 1.0, step=0.01, key=s.key("t"))
    s.sync()
    digit = test_digits(1, int(s["index"]))[0][0]
    v = encoder_view(digit, float(s["t"]))
    st.markdown(f"**t = {v.t:.2f}, log-SNR = {v.log_snr:+.2f}**")
    cols = st.columns(4)
    for col, img, cap in zip(cols, (v.x, v.x_phi, v.y, v.diff), (
            "x (data)", "x_φ(x, t) (encoded)", "y_φ(x, t)", f"x_φ − α_t² x, amplified ×{v.gain:.0f}"), strict=True):
        col.image(upscale(img, SCALE), caption=cap, output_format="PNG")
    st.caption("At initialisation y = 0 and x_φ = α_t² x, so the last panel is what training learned "
               "(mid-grey = no change).")
    st.image(upscale(np.concatenate([np.concatenate(list(v.strip), 1), np.concatenate(list(v.strip_trivial), 1)]), 4),
             caption="Encodings over t = " + ", ".join(f"{t:.2f}" for t in v.strip_t)
             + " (top: learned x_φ; bottom: α_t² x, the encoder at initialisation)", output_format="PNG")
    return v


def numbers_section():
    """Held-out bits/dim per model beside the baselines; the paired gap; per-t loss and stacked terms."""
    cmp = comparison()
    rows = [{"model": r["label"], "parameters": r["params"], "steps": r["steps"],
             "test bpd": r["test_bpd"], "± SE": r["test_bpd_se"], **{f"{k} (bpd)": v for k, v in
                                                                    (r["terms_bpd"] or {}).items()}}
            for r in cmp["rows"].values()]
    rows += [{"model": "per-pixel categorical (baseline)", "test bpd": cmp["baselines"]["categorical_per_pixel_bpd"]},
             {"model": "zlib (baseline)", "test bpd": cmp["baselines"]["zlib_bpd"]}]
    st.dataframe(pd.DataFrame(rows), hide_index=True, width="stretch")
    st.caption(cmp["readout"])
    gap = cmp["metrics"].get("diffenc_minus_matched_bpd")
    if gap:
        verdict = "**significant**" if gap["significant"] else "**not significant** (a null result)"
        st.markdown(f"**DiffEnc − size-matched VDM = {gap['gap']:+.4f} bpd** (SE {gap['se']:.4f}: the larger of "
                    f"the per-image SE {gap['se_images']:.4f} and the across-seed SE {gap['se_seeds']:.4f}, 3 seeds); "
                    f"{verdict} at 2 SE.")
        per_seed = cmp["metrics"].get("per_seed_test_bpd", {})
        st.caption("Per seed: " + ", ".join(f"{k} {v:.3f}" for k, v in per_seed.items()))
    else:
        st.info("The paired comparison over 3 seeds is not on the card yet.")
    curves = loss_curves()
    left, right = st.columns(2)
    fig = go.Figure()
    for key, (t, loss) in curves.items():
        fig.add_scatter(x=t, y=loss, name=MODELS[key], mode="lines+markers")
    if "diffenc" in curves and "vdm-matched" in curves:
        fig.add_scatter(x=curves["diffenc"][0], y=curves["diffenc"][1] - curves["vdm-matched"][1], yaxis="y2",
                        name="DiffEnc − matched VDM", line={"dash": "dot"})
    fig.update_layout(title="Diffusion loss against t (100 test digits, same noise)", xaxis_title="t",
                      yaxis_title="bits/dim integrand", yaxis2={"overlaying": "y", "side": "right",
                                                                "title": "difference"}, height=360)
    left.plotly_chart(fig, width="stretch", key=f"{PAGE}.curve")
    fig = go.Figure()
    for term in ("diffusion", "latent", "recon"):
        fig.add_bar(x=[r["label"] for r in cmp["rows"].values()],
                    y=[(r["terms_bpd"] or {}).get(term, 0) for r in cmp["rows"].values()], name=term)
    fig.update_layout(barmode="stack", title="ELBO terms (test bits/dim)", height=360)
    right.plotly_chart(fig, width="stretch", key=f"{PAGE}.terms")
    return cmp


def samples_section():
    """16 samples per model under the same noise, and the z_t trajectories of VDM and DiffEnc."""
    c1, c2 = st.columns(2)
    c1.select_slider("Sampling steps", [25, 50, 100, 200, 500], key=s.key("steps"))
    c2.number_input("Sample seed", 0, 10_000, step=1, key=s.key("seed"))
    s.sync()
    out = _samples(int(s["steps"]), int(s["seed"]))
    cols = st.columns(len(out))
    for col, (key, smp) in zip(cols, out.items(), strict=True):
        col.image(upscale(_grid(smp.images), 4), caption=f"{MODELS[key]}: 16 samples", output_format="PNG")
    st.markdown("**z_t trajectories** (first sample, the same noise for both models), from t = 1 (left) to t = 0")
    for key in ("vdm", "diffenc"):
        smp = out[key]
        st.image(upscale(np.concatenate(list(to_u8(np.clip(smp.trajectory[:, 0], -1, 1))), 1), 4),
                 caption=f"{MODELS[key]} at t = " + ", ".join(f"{t:.2f}" for t in smp.trajectory_t),
                 output_format="PNG")
    return out


def _drawing():
    """The digit drawn on the canvas (or uploaded), as an image array, or None."""
    try:
        from streamlit_drawable_canvas import st_canvas

        res = st_canvas(stroke_width=14, stroke_color="#FFFFFF", background_color="#000000", height=168,
                        width=168, drawing_mode="freedraw", return_image_data=True, key=f"{PAGE}.canvas")
        data = None if res is None else res.image_data
        if data is not None and np.asarray(data)[..., :3].max() > 30:
            return np.asarray(data)
    except Exception:  # the optional component is missing or cannot register
        st.caption("The drawing canvas is unavailable here; upload an image instead.")
    file = st.file_uploader("…or upload a digit image (PNG/JPEG)", type=["png", "jpg", "jpeg", "bmp"],
                            key=f"{PAGE}.upload")
    return file


def draw_section():
    """A drawn or uploaded digit, downsampled to 14x14, and its bpd under each model."""
    st.select_slider("Monte Carlo draws", [1, 2, 4, 8, 16], key=s.key("repeats"))
    s.sync()
    left, right = st.columns([1, 2])
    with left:
        raw = _drawing()
    if raw is None:
        right.info("Draw a digit (large, centred) or upload one to see its bits/dim under each model.")
        return
    try:
        digit = to_digit(raw)
        res = bpd_all(digit, int(s["repeats"]), int(s["seed"]))
    except ValueError as e:
        show_error(e)
        return
    right.image(upscale(digit, SCALE), caption="What the models see (14x14, 256 levels)", output_format="PNG")
    right.dataframe(pd.DataFrame([{"model": MODELS[k], "bpd": float(r.bpd[0]), **{t: float(v[0]) for t, v in
                                                                               r.terms.items()}}
                                  for k, r in res.items()]), hide_index=True)


def ood_section():
    """bpd of scikit-learn's digits and font digits beside MNIST test digits (computed on request)."""
    if st.button("Score out-of-distribution digits", key=f"{PAGE}.ood"):
        with running("Scoring OOD digits under 3 models", f"{PAGE}.ood_cancel") as p:
            st.session_state[f"{PAGE}._ood"] = ood_bpd(4, 0, 64, progress=p)
    else:
        was_cancelled(f"{PAGE}.ood_cancel")
    res = st.session_state.get(f"{PAGE}._ood")
    if res is None:
        return
    df = pd.DataFrame([{"model": MODELS[k], "digits": d, "mean bpd": m, "± SE": se}
                       for (k, d), (m, se) in res["table"].items()])
    st.dataframe(df.pivot(index="digits", columns="model", values="mean bpd"), width="stretch")
    st.image(upscale(np.concatenate([np.concatenate(list(v), 1) for v in res["examples"].values()]), 4),
             caption="Rows: " + ", ".join(res["examples"]), output_format="PNG")


try:
    ready()
except ValueError as e:
    show_error(f"{e} The three models (and seeds 1-2 for the paired comparison) are trained by "
               "`python -m backend.train diffenc-all`; see the DiffEnc model cards.")
    st.stop()
view = encoder_section()
st.subheader("Likelihood on held-out digits")
cmp = numbers_section()
st.subheader("Samples")
smp = samples_section()
st.subheader("Your digit")
draw_section()
st.subheader("Out-of-distribution digits")
st.caption("64 scikit-learn digits (8x8, upscaled into 14x14) and the ten digits rendered in PIL's default font, "
           "4 Monte Carlo draws each; higher bpd = less likely under the model.")
ood_section()
st.subheader("Downloads")
d1, d2, d3 = st.columns(3)
d1.download_button("Samples (PNG)", png_bytes(upscale(np.concatenate([_grid(v.images) for v in smp.values()]), 4)),
                   "diffenc_samples.png", "image/png")
d2.download_button("Encodings over t (PNG)", png_bytes(upscale(np.concatenate(list(view.strip), 1), 4)),
                   "diffenc_encodings.png", "image/png")
d3.download_button("Comparison (JSON)", json.dumps(cmp, indent=1, default=float), "diffenc_comparison.json",
                   "application/json")
st.caption(f"Link to these settings: `{s.link()}`")
