"""APT: Adversarial Pivotal Tuning on handwritten digits, compared with a pixel-space PGD attack."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pandas as pd
import streamlit as st

from backend.apt import CLASSIFIERS, N_EVAL, AttackSettings, Digit, attack_report, compare_attacks, run_fooling_rates
from backend.core import job_gate, png_bytes, upscale
from ui.common import header, running, show_error
from ui.state import url_state

SCALE, DIGITS = 6, list(range(10))
SOURCES = ["Test digit", "Generated", "Draw", "Upload"]
CHOICES = {"eps": [0.05, 0.1, 0.2, 0.3], "lr": [0.0001, 0.0002, 0.0003, 0.0005, 0.001, 0.003],
           "adv_weight": [0.003, 0.01, 0.03, 0.1, 0.3, 1.0, 3.0], "reg_weight": [0.0, 0.1, 0.3, 1.0, 3.0, 10.0],
           "realism_weight": [0.0, 0.1, 0.3, 1.0, 3.0]}
NAMES = {"cnn": "CNN", "mlp": "MLP", "robust": "Robust CNN (PGD-trained)"}
TARGETS = ["untargeted", *map(str, DIGITS)]
DEFAULTS = {"source": SOURCES[0], "index": 0, "gen_label": 3, "gen_seed": 0, "label": 0, "classifier": "cnn",
            "target": "untargeted", "mode": "apt", "steps": 300, "adv_weight": 0.1, "lr": 0.0001, "reg_weight": 1.0,
            "realism_weight": 0.0, "eps": 0.1, "seed": 0, "batch_n": 5}

header(
    "APT: adversarial pivotal tuning",
    "Invert a digit into a generator, then tune the **generator's weights** until a classifier is fooled "
    "while the image stays close to the digit; compare with a pixel-space PGD attack.",
    "Christensen, Snæbjarnarson, Dittadi, Belongie, Benaim, Assessing Neural Network Robustness via "
    "Adversarial Pivotal Tuning (WACV 2024)",
    "https://arxiv.org/abs/2211.09782",
    """
1. **Pivot.** Find the latent w_p with G(w_p, y) ≈ the digit x (encoder start, then Adam; G frozen).
2. **Tune.** Copy G and optimise its *weights* with w_p fixed, x' = G'(w_p, y), stopping at the first x' that
   fools the classifier C: `L = MSE(x', x) + d_P(x', x) + locality·MSE(G'(w_r, y_r), G(w_r, y_r))
   + λ·max(z_y − max_{k≠y} z_k, −0.5) + realism·(−D(x', y))`, z = C(x'), w_r = w_p + 3·(z_r − w_p)/‖z_r − w_p‖
   (PTI's locality term), D a discriminator fitted afterwards to the frozen G's outputs (the paper's L_PG
   uses the GAN's jointly trained D and a random class). 3. **Judge**: an RBF-SVM on the 8×8 digits, never used by the attack, re-reads x'.

G: a cVAE decoder (8×8 digits upsampled to 32×32); d_P: a project-trained digit CNN. **No guarantee** on the
size of the change (APT is not norm-bounded) or that the class is kept: the judge measures that, G does not promise it.
""",
)

@st.cache_data(show_spinner="Running APT (waits for a free slot when the server is busy)…", max_entries=16)
def _compare_cached(key: str, _image: np.ndarray, label: int, settings: tuple):
    with job_gate().slot("APT attack"):  # counts against the server's heavy-job limit like a clicked run
        return compare_attacks(_image, label, AttackSettings(**dict(settings)))

def _show(img, caption: str, scale: int = SCALE, where=st):
    where.image(upscale(np.asarray(img), scale), caption=caption, output_format="PNG")

def _request(flag: str) -> None:
    st.session_state[flag] = True  # a click survives a rerun that happens before the button is drawn again

def _raw_drawing():
    try:
        from streamlit_drawable_canvas import st_canvas
    except Exception:  # the optional component is not installed
        st.info("The drawing canvas needs `streamlit-drawable-canvas`; upload a drawing instead.")
        return None
    res = st_canvas(stroke_width=16, stroke_color="#FFFFFF", background_color="#000000", height=192, width=192,
                    drawing_mode="freedraw", return_image_data=True, key="apt_canvas")
    st.caption("Draw one digit, large and centred; the bin icon clears the canvas.")
    data = None if res is None else res.image_data
    return np.asarray(data) if data is not None and np.asarray(data)[..., :3].max() > 30 else None


def choose_digit(s):
    """The digit to attack (a Digit, or None) and a key naming it."""
    source = st.radio("Image", SOURCES, key=s.key("source"), horizontal=True,
                      help="A held-out test digit, a sample of the generator, your drawing or an uploaded image.")
    digit, key, raw = None, "", None
    try:
        if source == "Test digit":
            i = st.number_input("Test digit #", 0, N_EVAL - 1, step=1, key=s.key("index"),
                                help="One of the held-out digits of the model card's evaluation.")
            return Digit.held_out(int(i)), f"test:{i}"
        if source == "Generated":
            g1, g2 = st.columns(2)
            y, seed = g1.selectbox("Class", DIGITS, key=s.key("gen_label")), g2.number_input(
                "Sample seed", 0, 10_000, step=1, key=s.key("gen_seed"))
            return Digit.generated(int(y), int(seed)), f"gen:{y}:{seed}"
        raw = _raw_drawing() if source == "Draw" else st.file_uploader(
            "Upload a digit (PNG/JPEG)", type=["png", "jpg", "jpeg", "bmp", "gif", "webp"], key="apt_upload")
        if raw is not None:
            digit, key = ((Digit.drawn(raw), f"draw:{hash(raw.tobytes())}") if source == "Draw"
                          else (Digit.uploaded(raw), f"upload:{raw.file_id}"))
    except ValueError as e:
        show_error(e, getattr(raw, "name", None))
    if digit is None:
        st.info("Nothing to attack yet: draw or upload a digit (a light or dark background both work).")
        return None, ""
    if st.session_state.get("apt._guess_for") != key:  # a new drawing: start from the CNN's reading
        s["label"], st.session_state["apt._guess_for"] = digit.cnn_reads, key
    y = st.selectbox("Its class (for the generator)", DIGITS, key=s.key("label"),
                     help=f"The CNN reads it as {digit.cnn_reads}; correct it if that is wrong.")
    return dataclasses.replace(digit, label=int(y)), key


def attack_controls(s) -> AttackSettings:
    c_atk, c_str = st.columns(2)
    c_atk.selectbox("Classifier to fool", CLASSIFIERS, key=s.key("classifier"), format_func=lambda c: NAMES.get(c, c))
    c_atk.selectbox("Goal", TARGETS, key=s.key("target"),
                    format_func=lambda t: "untargeted (any wrong class)" if t == "untargeted" else f"target class {t}")
    c_atk.radio("Mode", ["apt", "apt+pgd"], key=s.key("mode"), horizontal=True,
                format_func=lambda m: {"apt": "APT", "apt+pgd": "APT + PGD on top"}[m])
    c_atk.select_slider("PGD ε (L∞, [0, 1] units)", CHOICES["eps"], key=s.key("eps"),
                        help="The robust CNN was trained against PGD at ε = 0.1.")
    c_str.select_slider("Adversarial weight λ", CHOICES["adv_weight"], key=s.key("adv_weight"),
                        help="Weight of the fooling term; higher fools more often but changes the digit more.")
    c_str.slider("Max tuning steps", 0, 1000, step=10, key=s.key("steps"),
                 help="Tuning stops earlier, at the first image that fools the classifier.")
    a1, a2, a3 = c_str.columns(3)
    a1.select_slider("Learning rate", CHOICES["lr"], key=s.key("lr"))
    a2.select_slider("Locality weight", CHOICES["reg_weight"], key=s.key("reg_weight"),
                     help="Keeps G' ≈ G at other latents (pivotal tuning's regulariser).")
    a3.select_slider("Realism weight", CHOICES["realism_weight"], key=s.key("realism_weight"),
                     help="Weight of −D(x', y), a discriminator fitted to the frozen G's outputs; 0 drops the term.")
    c_str.number_input("Seed", 0, 10_000, step=1, key=s.key("seed"))
    s.sync()
    return AttackSettings.from_values(s.values())


def run_comparison(digit, key: str, settings: AttackSettings):
    """The comparison to show: a click runs it live, a new digit is attacked at once, else the last one stays."""
    run_key = json.dumps([key, digit.label, dataclasses.asdict(settings)])
    have = st.session_state.get("apt._result")
    clicked = st.button("Run attack", type="primary", key="apt_run", on_click=_request, args=("apt._run",),
                        help="Pivot inversion, then generator tuning; the image evolves below.")
    clicked = st.session_state.pop("apt._run", False) or clicked
    fresh = have is None or json.loads(have[0])[:2] != [key, digit.label]
    if not (clicked or fresh):
        if have[0] != run_key:
            st.info("Settings changed: press **Run attack** to attack with them. The previous result is kept below.")
        return have[1]
    if not clicked and key.startswith(("draw:", "upload:")):  # a user's own image is attacked only on request
        st.info("Press **Run attack** to attack this image; Cancel stops it.")
        return None
    if not clicked:
        try:
            st.session_state["apt._result"] = (run_key, _compare_cached(run_key, digit.image, digit.label,
                                                                        tuple(dataclasses.asdict(settings).items())))
        except ValueError as e:
            show_error(e)
            return None
        return st.session_state["apt._result"][1]
    live = st.empty()
    try:  # an error shows outside the status box (which ends in its error state)
        with running("APT attack", cancel_key="apt_cancel") as prog:
            st.session_state["apt._result"] = (run_key, compare_attacks(
                digit.image, digit.label, settings, progress=prog,
                on_image=lambda stage, step, im: live.image(upscale(im, SCALE), caption=f"{stage}, step {step}")))
    except ValueError as e:
        show_error(e)
    live.empty()
    return (st.session_state.get("apt._result") or (None, None))[1]


def show_comparison(cmp) -> None:
    r = cmp.apt
    st.subheader(f"{cmp.apt_name} vs {r.classifier}: {'fooled' if r.success else 'not fooled'} after "
                 f"{r.steps_used} tuning steps; the judge reads {r.judge_reads} (true class {r.label})")
    for col, (img, caption) in zip(st.columns(6), cmp.panels()):
        _show(img, caption, where=col)
    st.dataframe(pd.DataFrame(cmp.table), hide_index=True, width="stretch")
    st.caption(cmp.note())
    st.markdown("**Class probabilities of every classifier** (transfer at a glance)")
    for col, (c, probs) in zip(st.columns(len(r.probs_after)), cmp.probabilities().items()):
        col.caption(c)
        col.bar_chart(pd.DataFrame(probs, index=[str(d) for d in DIGITS]), stack=False, height=220, x_label="class",
                      y_label="probability")


def show_edits(r) -> None:
    if not r.edits:
        return
    st.markdown("**Latent editing survives the tuning**: steps along one of the class's principal latent directions "
                "through the pivot (−2 to 2 class std), in the original G (top) and the tuned G' (bottom).")
    d = st.radio("Direction", [0, 1, 2], format_func=lambda k: f"direction {k + 1}", key="apt_edit_dir", horizontal=True)
    strips = np.concatenate([np.concatenate(list(r.edits[k][d]), axis=1) for k in ("original", "tuned")], axis=0)
    _show(strips, f"{r.classifier} reads G {list(map(int, r.edits['pred_original'][d]))}, "
          f"G' {list(map(int, r.edits['pred_tuned'][d]))}", 3)


def downloads(cmp) -> None:
    r = cmp.apt
    strip = np.concatenate([r.original, r.reconstruction, r.adversarial, cmp.pgd_image], axis=1)
    d1, d2, d3 = st.columns(3)
    d1.download_button("APT image (PNG)", png_bytes(upscale(r.adversarial, 4)), "apt.png", "image/png")
    d2.download_button("Original | pivot | APT | PGD", png_bytes(upscale(strip, 4)), "apt_strip.png", "image/png")
    d3.download_button("Metrics (JSON)", json.dumps(cmp.summary(), indent=2, default=float), "apt_metrics.json",
                       "application/json")


def card_results() -> None:
    rep = attack_report()
    if rep is None:
        st.info("The generator's checkpoint holds no attack evaluation yet: run `python -m backend.train apt`.")
        return
    st.markdown(f"**Fooled and kept on {rep.n_images} held-out test digits** (the model card's evaluation; "
                f"{rep.counting}). PGD: 40 steps; APT + PGD at ε = {rep.eps}. {rep.selection} {rep.judge}")
    st.dataframe(df := pd.DataFrame(rep.rows).drop(columns=["mode", "eps", "n", "ssim_fooled"]), hide_index=True)
    st.bar_chart(df.pivot(index="attack", columns="classifier", values="fooled_and_kept"), stack=False, height=260,
                 y_label="fooled and kept")
    if rep.sweep:
        st.markdown(f"**How the settings were chosen**: one point per setting, {rep.sweep_n_images} validation digits.")
        st.scatter_chart(pd.DataFrame(rep.sweep), x="ssim", y="fooled_and_kept", color="realism_weight", height=260,
                         x_label="mean SSIM to the original", y_label="fooled and kept")


def batch_run(s, settings: AttackSettings) -> None:
    st.markdown("**Run it yourself** on the first few of those test digits with the settings of the first tab.")
    st.number_input("Test digits", 1, 50, step=1, key=s.key("batch_n"))
    s.sync()
    clicked = st.button("Run batch", key="apt_batch_run", on_click=_request, args=("apt._batch",))
    if st.session_state.pop("apt._batch", False) or clicked:
        try:
            with running("Batch evaluation", cancel_key="apt_batch_cancel") as prog:
                st.session_state["apt._batch_rows"] = run_fooling_rates(int(s["batch_n"]), settings, prog).rows
        except ValueError as e:
            show_error(e)
    if st.session_state.get("apt._batch_rows"):
        bdf = pd.DataFrame(st.session_state["apt._batch_rows"])
        st.dataframe(bdf, hide_index=True, width="stretch")
        st.download_button("Batch results (CSV)", bdf.to_csv(index=False), "apt_batch.csv", "text/csv")


s = url_state("apt", DEFAULTS, {**CHOICES, "classifier": CLASSIFIERS, "source": SOURCES, "target": TARGETS, "gen_label": DIGITS,
                               "label": DIGITS, "mode": ["apt", "apt+pgd"], "index": (0, N_EVAL - 1), "gen_seed": (0, 10_000),
                               "steps": (0, 1000), "seed": (0, 10_000), "batch_n": (1, 50)})
tab_one, tab_batch = st.tabs(["Single image", "Batch: fooling rates"])
with tab_one:
    c_src, c_rest = st.columns([1.2, 2.3])
    with c_src:
        digit, digit_key = choose_digit(s)
    with c_rest:
        settings = attack_controls(s)
    if digit is not None and (cmp := run_comparison(digit, digit_key, settings)) is not None:
        show_comparison(cmp)
        show_edits(cmp.apt)
        downloads(cmp)
    st.caption(f"Link to these settings: `{s.link()}`")
with tab_batch:
    card_results()
    st.divider()
    batch_run(s, settings)
