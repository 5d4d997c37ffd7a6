"""APT: Adversarial Pivotal Tuning on handwritten digits, compared with a pixel-space PGD attack."""

from __future__ import annotations

import json

import numpy as np
import streamlit as st

from backend.core.media import png_bytes, upscale
from ui.common import header, running, show_error
from ui.state import url_state

SCALE = 6
DIGITS = list(range(10))
EPS_CHOICES = [0.05, 0.1, 0.2, 0.3]
LRS = [0.0001, 0.0002, 0.0003, 0.0005, 0.001, 0.003]
ADV_WEIGHTS = [0.003, 0.01, 0.03, 0.1, 0.3, 1.0, 3.0]
SOURCES = ["Test digit", "Generated", "Draw", "Upload"]
EVAL_SEED = 1  # the 100 held-out digits of the model card's evaluation

header(
    "APT: adversarial pivotal tuning",
    "Invert a digit into a generator, then tune the **generator's weights** until a classifier is fooled "
    "while the image stays close to the digit; compare with a pixel-space PGD attack.",
    "Christensen, Snæbjarnarson, Dittadi, Belongie, Benaim, Assessing Neural Network Robustness via "
    "Adversarial Pivotal Tuning (WACV 2024)",
    "https://arxiv.org/abs/2211.09782",
    """
1. **Pivot.** Find the latent w_p whose generated image G(w_p, y) best matches the digit x
   (encoder start, then Adam on MSE + a perceptual distance; G frozen).
2. **Tune.** Copy G and optimise its *weights* with w_p fixed:
   `L = MSE(G'(w_p), x) + d_P(G'(w_p), x) + MSE(G'(w_r), G(w_r)) + λ · margin(C(G'(w_p)), y)`,
   where w_r are latents at distance α from the pivot (PTI's locality term, so G' still behaves like G
   elsewhere) and the margin term pushes the true class below the best other one (or a target above).
   Tuning stops at the first step whose image fools the classifier C.
3. **Compare** with L∞ PGD in pixel space (Madry et al. 2018) and PGD on top of the APT image.

Here G is the decoder of a class-conditional VAE trained on scikit-learn's 8×8 digits upsampled to
32×32, so the class y is kept by construction of G (not verified by a human). LPIPS needs ImageNet
weights that cannot be downloaded, so the perceptual distance d_P and the reported similarity use
**SSIM** and a **digit CNN trained by this project** (never the attacked classifier). The upsampled scans
are smooth (64 true degrees of freedom): PGD can exploit the extra pixels, APT edits cannot.
""",
)


# ---------------------------------------------------------------- cached back-end calls
@st.cache_resource(show_spinner="Loading the generator and classifiers…")
def _models():
    from backend.apt import load_models

    return load_models()


@st.cache_data(show_spinner=False, max_entries=4)
def _test_set(n: int, seed: int):
    from backend.apt import test_set

    return test_set(n, seed)


@st.cache_data(show_spinner=False, max_entries=32)
def _generated(label: int, seed: int):
    from backend.apt import generate

    return generate(label, seed=seed, n=1)[0]


@st.cache_data(show_spinner=False, max_entries=16)
def _prepare(key: str, _raw: np.ndarray):
    from backend.apt import prepare_image

    return prepare_image(_raw)


@st.cache_data(show_spinner="Running APT…", max_entries=16)
def _attack_cached(key: str, _image: np.ndarray, label: int, settings: tuple):
    from backend.apt import attack

    return attack(_image, label, **dict(settings))


@st.cache_data(show_spinner=False, max_entries=32)
def _pgd_cached(key: str, _image: np.ndarray, label: int, classifier: str, eps: float, target):
    from backend.apt import pgd

    return pgd(_image, label, classifier=classifier, eps=eps, steps=40, target=target)


def _card(name: str) -> dict:
    from backend.core.registry import CheckpointError, read_card

    try:
        return read_card(name)
    except CheckpointError:
        return {}


def _show(img, caption: str):
    st.image(upscale(np.asarray(img), SCALE), caption=caption, output_format="PNG")


def _diff(a, b, gain: float = 4.0) -> np.ndarray:
    d = np.abs(a.astype(np.float32) - b.astype(np.float32)) * gain
    return np.clip(d, 0, 255).astype(np.uint8)


def _request(flag: str) -> None:
    # A click is remembered in session state by its callback, so it survives a rerun that happens before the
    # button is drawn again (ui.common.header may rerun once to enter the app frame).
    st.session_state[flag] = True


def _pred_text(probs: np.ndarray) -> str:
    k = int(np.argmax(probs))
    return f"{k} ({probs[k]:.0%})"


# ---------------------------------------------------------------- settings
s = url_state("apt", {
    "source": SOURCES[0], "index": 0, "gen_label": 3, "gen_seed": 0, "label": 0,
    "classifier": "cnn", "target": "untargeted", "mode": "apt", "steps": 300, "adv_weight": 0.1,
    "lr": 0.0003, "reg_weight": 1.0, "eps": 0.1, "seed": 0, "batch_n": 5,
})
try:
    models = _models()
except ValueError as e:  # a missing or corrupt checkpoint
    show_error(e)
    st.stop()
classifiers = list(models.classifiers)
if s["classifier"] not in classifiers:
    s["classifier"] = classifiers[0]
if s["source"] not in SOURCES:
    s["source"] = SOURCES[0]
if s["eps"] not in EPS_CHOICES:
    s["eps"] = 0.1
if s["adv_weight"] not in ADV_WEIGHTS:
    s["adv_weight"] = 0.1
if s["lr"] not in LRS:
    s["lr"] = 0.0003
if str(s["target"]) not in ["untargeted", *map(str, DIGITS)]:
    s["target"] = "untargeted"

tab_one, tab_batch = st.tabs(["Single image", "Batch: fooling rates"])

with tab_one:
    c_src, c_atk, c_str = st.columns([1.2, 1, 1.3])
    with c_src:
        st.radio("Image", SOURCES, key=s.key("source"), horizontal=True,
                 help="A held-out test digit, a sample of the generator, your drawing or an uploaded image.")
        image, label, image_key = None, None, ""
        if s["source"] == "Test digit":
            imgs, labels = _test_set(100, EVAL_SEED)
            st.number_input("Test digit #", 0, 99, step=1, key=s.key("index"),
                            help="One of the 100 held-out digits used in the model card's evaluation.")
            i = int(s["index"])
            image, label, image_key = imgs[i], int(labels[i]), f"test:{i}"
        elif s["source"] == "Generated":
            g1, g2 = st.columns(2)
            g1.selectbox("Class", DIGITS, key=s.key("gen_label"))
            g2.number_input("Sample seed", 0, 10_000, step=1, key=s.key("gen_seed"))
            label = int(s["gen_label"])
            image, image_key = _generated(label, int(s["gen_seed"])), f"gen:{label}:{s['gen_seed']}"
        else:
            raw, raw_key = None, ""
            if s["source"] == "Draw":
                try:
                    from streamlit_drawable_canvas import st_canvas
                except Exception:  # the optional component is not installed
                    st_canvas = None
                if st_canvas is None:
                    st.info("The drawing canvas needs `streamlit-drawable-canvas`; upload a drawing instead.")
                else:
                    res = st_canvas(stroke_width=16, stroke_color="#FFFFFF", background_color="#000000",
                                    height=192, width=192, drawing_mode="freedraw", return_image_data=True,
                                    key="apt_canvas")
                    st.caption("Draw one digit, large and centred; the bin icon clears the canvas.")
                    data = res.image_data if res is not None else None
                    if data is not None and np.asarray(data)[..., :3].max() > 30:  # an empty canvas is not an error
                        raw = np.asarray(data)
                        raw_key = "draw:" + str(hash(raw.tobytes()))
            else:
                up = st.file_uploader("Upload a digit (PNG/JPEG)", type=["png", "jpg", "jpeg", "bmp", "gif", "webp"],
                                      key="apt_upload")
                if up is not None:
                    from backend.core.uploads import load_image

                    try:
                        raw = load_image(up)
                        raw_key = f"upload:{up.file_id}"
                    except ValueError as e:
                        show_error(e)
            if raw is not None:
                try:
                    image = _prepare(raw_key, raw)
                    image_key = raw_key
                except ValueError as e:
                    show_error(e)
            if image is None:
                st.info("Nothing to attack yet: draw or upload a digit (a light or dark background both work).")
            else:
                from backend.apt import classify

                guess = int(np.argmax(classify(image, "cnn")[0]))
                if st.session_state.get("apt._guess_for") != image_key:
                    s["label"] = guess
                    st.session_state["apt._guess_for"] = image_key
                st.selectbox("Its class (for the generator)", DIGITS, key=s.key("label"),
                             help=f"The CNN reads it as {guess}; correct it if that is wrong.")
                label = int(s["label"])
    with c_atk:
        st.selectbox("Classifier to fool", classifiers, key=s.key("classifier"),
                     format_func=lambda c: {"cnn": "CNN", "mlp": "MLP", "robust": "Robust CNN (PGD-trained)"}.get(c, c))
        st.selectbox("Goal", ["untargeted", *map(str, DIGITS)], key=s.key("target"),
                     format_func=lambda t: "untargeted (any wrong class)" if t == "untargeted" else f"target class {t}")
        st.radio("Mode", ["apt", "apt+pgd"], key=s.key("mode"), horizontal=True,
                 format_func=lambda m: {"apt": "APT", "apt+pgd": "APT + PGD on top"}[m])
        st.select_slider("PGD ε (L∞, [0, 1] units)", EPS_CHOICES, key=s.key("eps"),
                         help="The robust CNN was trained against PGD at ε = 0.1.")
    with c_str:
        st.select_slider("Adversarial weight λ", ADV_WEIGHTS, key=s.key("adv_weight"),
                         help="Weight of the fooling term; higher fools more often but changes the digit more "
                              "(see the trade-off curve in the Batch tab).")
        st.slider("Max tuning steps", 0, 1000, step=10, key=s.key("steps"),
                  help="Tuning stops earlier, at the first image that fools the classifier.")
        a1, a2 = st.columns(2)
        a1.select_slider("Learning rate", LRS, key=s.key("lr"))
        a2.select_slider("Locality weight", [0.0, 0.1, 0.3, 1.0, 3.0, 10.0], key=s.key("reg_weight"),
                         help="Keeps G' ≈ G at other latents (pivotal tuning's regulariser).")
        st.number_input("Seed", 0, 10_000, step=1, key=s.key("seed"))
    s.sync()

    target = None if s["target"] == "untargeted" else int(s["target"])
    if image is not None and target is not None and target == label:
        st.warning("The target class is the digit's own class: pick another target or 'untargeted'.")
    elif image is not None:
        settings = (("classifier", s["classifier"]), ("target", target), ("mode", s["mode"]),
                    ("steps", int(s["steps"])), ("seed", int(s["seed"])), ("eps", float(s["eps"])),
                    ("adv_weight", float(s["adv_weight"])), ("lr", float(s["lr"])),
                    ("reg_weight", float(s["reg_weight"])))
        run_key = json.dumps([image_key, label, settings])
        have = st.session_state.get("apt._result")
        btn = st.button("Run attack", type="primary", key="apt_run", on_click=_request, args=("apt._run_requested",),
                        help="Pivot inversion, then generator tuning; the image evolves below.")
        btn = st.session_state.pop("apt._run_requested", False) or btn
        result = None
        if btn:
            from backend.apt import attack

            live = st.empty()

            def on_image(stage, step, img):
                live.image(upscale(img, SCALE), caption=f"{stage}, step {step}", output_format="PNG")

            with running("APT attack", cancel_key="apt_cancel") as prog:
                try:
                    result = attack(image, label, progress=prog, on_image=on_image, **dict(settings))
                    st.session_state["apt._result"] = (run_key, result)
                except ValueError as e:
                    show_error(e)
            live.empty()
        elif have is not None and have[0] == run_key:
            result = have[1]
        elif have is None or json.loads(have[0])[:2] != [image_key, label]:
            # first visit or a new image: show a result without a click (cached per image and settings)
            try:
                result = _attack_cached(run_key, image, label, settings)
                st.session_state["apt._result"] = (run_key, result)
            except ValueError as e:
                show_error(e)
        else:
            st.info("Settings changed: press **Run attack** to attack with them. The previous result is kept below.")
            result = have[1]

        if result is not None:
            from backend.apt import classify_all, describe_change

            pgd_img = _pgd_cached(json.dumps([image_key, result.classifier, float(s["eps"]), result.target]),
                                  result.original, result.label, result.classifier, float(s["eps"]), result.target)
            pgd_probs = classify_all(pgd_img)
            pgd_metrics = describe_change(result.original, pgd_img)
            name = result.classifier
            apt_name = "APT + PGD" if result.mode == "apt+pgd" else "APT"
            verdict = "fooled" if result.success else "not fooled"
            st.subheader(f"{apt_name} vs {name}: {verdict} after {result.steps_used} tuning steps")
            cols = st.columns(6)
            with cols[0]:
                _show(result.original, f"original, {name}: {_pred_text(result.probs_before[name])}")
            with cols[1]:
                _show(result.reconstruction, f"pivot G(w_p), PSNR {result.metrics.get('pivot_psnr', 0):.1f} dB")
            with cols[2]:
                _show(result.adversarial, f"{apt_name}: {_pred_text(result.probs_after[name])}")
            with cols[3]:
                pgd_ok = int(np.argmax(pgd_probs[name])) != result.label if result.target is None else \
                    int(np.argmax(pgd_probs[name])) == result.target
                _show(pgd_img, f"PGD ε={s['eps']}: {_pred_text(pgd_probs[name])}")
            with cols[4]:
                _show(_diff(result.adversarial, result.original), f"|{apt_name} − original| × 4")
            with cols[5]:
                _show(_diff(pgd_img, result.original), "|PGD − original| × 4")

            import pandas as pd

            rows = []
            for label_, m_, probs_, ok_ in ((apt_name, result.metrics, result.probs_after, result.success),
                                            (f"PGD ε={s['eps']}", pgd_metrics, pgd_probs, pgd_ok)):
                row = {"attack": label_, f"fools {name}": bool(ok_), "SSIM": m_["ssim"], "L2": m_["l2"],
                       "L∞": m_["linf"], "high-freq share": m_["high_freq_share"],
                       "feature dist. (P)": m_["perceptual"]}
                for c in classifiers:
                    row[f"pred {c}"] = int(np.argmax(probs_[c]))
                rows.append(row)
            st.dataframe(pd.DataFrame(rows), hide_index=True, width="stretch")
            st.caption(f"Digit class {result.label}. L2, L∞ in [0, 1] pixel units; high-freq share = energy of the "
                       "change above 1/4 cycle per pixel. Pivot reconstruction: PSNR "
                       f"{result.metrics.get('pivot_psnr', 0):.1f} dB, SSIM {result.metrics.get('pivot_ssim', 0):.2f}."
                       f" G' vs G at 100 other latents: RMSE {result.metrics.get('rmse_change_other_latents', 0):.3f}"
                       f" (at the pivot {result.metrics.get('rmse_change_pivot', 0):.3f}).")

            st.markdown("**Class probabilities of every classifier** (transfer at a glance)")
            pcols = st.columns(len(classifiers))
            for col, c in zip(pcols, classifiers):
                df = pd.DataFrame({"original": result.probs_before[c], apt_name: result.probs_after[c],
                                   "PGD": pgd_probs[c]}, index=[str(d) for d in DIGITS])
                with col:
                    st.caption(c)
                    st.bar_chart(df, stack=False, height=220, x_label="class", y_label="probability")

            if result.edits:
                st.markdown("**Latent editing survives the tuning**: move along one of the class's principal latent "
                            "directions through the pivot, in the original G and the tuned G'.")
                e1, e2 = st.columns([1, 3])
                with e1:
                    d = st.radio("Direction", [0, 1, 2], format_func=lambda k: f"direction {k + 1}",
                                 key="apt_edit_dir", horizontal=True)
                    alphas = list(np.round(result.edits["alphas"], 2))
                    a = st.select_slider("Step (class std units)", alphas, value=0.0, key="apt_edit_alpha")
                    j = alphas.index(a)
                    g1, g2 = st.columns(2)
                    with g1:
                        _show(result.edits["original"][d, j],
                              f"G: {name} says {int(result.edits['pred_original'][d, j])}")
                    with g2:
                        _show(result.edits["tuned"][d, j], f"G': {name} says {int(result.edits['pred_tuned'][d, j])}")
                with e2:
                    strip0 = np.concatenate(list(result.edits["original"][d]), axis=1)
                    strip1 = np.concatenate(list(result.edits["tuned"][d]), axis=1)
                    st.image(upscale(np.concatenate([strip0, strip1], axis=0), 3), output_format="PNG",
                             caption="top: original G, bottom: tuned G'; predictions "
                                     f"G {list(map(int, result.edits['pred_original'][d]))}, "
                                     f"G' {list(map(int, result.edits['pred_tuned'][d]))}")

            strip = np.concatenate([result.original, result.reconstruction, result.adversarial, pgd_img], axis=1)
            d1, d2, d3 = st.columns(3)
            d1.download_button("APT image (PNG)", png_bytes(upscale(result.adversarial, 4)), "apt.png", "image/png")
            d2.download_button("Original | pivot | APT | PGD (PNG)", png_bytes(upscale(strip, 4)),
                               "apt_comparison.png", "image/png")
            d3.download_button("Metrics (JSON)", json.dumps({
                "label": result.label, "target": result.target, "classifier": name, "mode": result.mode,
                "success": result.success, "steps": result.steps_used, "apt": result.metrics, "pgd": pgd_metrics,
                "settings": dict(settings)}, indent=2, default=float), "apt_metrics.json", "application/json")
    st.caption(f"Link to these settings: `{s.link()}`")

with tab_batch:
    import pandas as pd

    card = _card("apt-generator")
    ev = card.get("attack_eval")
    if ev:
        st.markdown(f"**Fooling rates on {ev['n_images']} held-out test digits** (from the model card; "
                    f"{ev['counting']}). PGD: 40 steps at ε = {ev['eps']}.")
        df = pd.DataFrame(ev["rows"])
        show = ["mode", "classifier", "n_eligible", "fooling_rate", "ssim", "l2", "linf", "high_freq_share",
                *[c for c in df.columns if c.startswith("transfer_")], "sec_per_image"]
        st.dataframe(df[[c for c in show if c in df.columns]], hide_index=True, width="stretch")
        chart = df.pivot(index="classifier", columns="mode", values="fooling_rate")
        st.bar_chart(chart, stack=False, height=260, y_label="fooling rate")
    else:
        st.info("The generator's card has no attack evaluation yet: run `python -m backend.train apt`.")
    sw = card.get("sweep")
    if sw:
        st.markdown(f"**Trade-off: sweep of the adversarial weight λ** (APT, {sw['n_images']} test digits per "
                    "point; labels: λ). Small λ keeps the digit closer to the original but fools less often.")
        sdf = pd.DataFrame(sw["rows"])[["classifier", "adv_weight", "fooling_rate", "ssim", "ssim_fooled", "steps"]]
        import altair as alt

        base = alt.Chart(sdf).encode(
            x=alt.X("ssim:Q", title="mean SSIM to the original", scale=alt.Scale(zero=False)),
            y=alt.Y("fooling_rate:Q", title="fooling rate"), color=alt.Color("classifier:N"),
            tooltip=list(sdf.columns))
        ch = base.mark_line(point=True) + base.mark_text(dy=-8, fontSize=10).encode(text="adv_weight:Q")
        st.altair_chart(ch, width="stretch")
        st.dataframe(sdf, hide_index=True, width="stretch")
    st.divider()
    st.markdown("**Run it yourself** on a few test digits with the settings of the first tab "
                "(about a second per digit and classifier on a free CPU).")
    st.number_input("Test digits", 1, 50, step=1, key=s.key("batch_n"))
    s.sync()
    clicked = st.button("Run batch", key="apt_batch_run", on_click=_request, args=("apt._batch_requested",))
    if st.session_state.pop("apt._batch_requested", False) or clicked:
        from backend.apt import batch_evaluate

        with running("Batch evaluation", cancel_key="apt_batch_cancel") as prog:
            try:
                rows = batch_evaluate(int(s["batch_n"]), seed=EVAL_SEED, modes=("apt", "pgd"), eps=float(s["eps"]),
                                      steps=int(s["steps"]), progress=prog, adv_weight=float(s["adv_weight"]),
                                      lr=float(s["lr"]), reg_weight=float(s["reg_weight"]))
                st.session_state["apt._batch"] = rows
            except ValueError as e:
                show_error(e)
    if st.session_state.get("apt._batch"):
        bdf = pd.DataFrame(st.session_state["apt._batch"])
        st.dataframe(bdf, hide_index=True, width="stretch")
        st.bar_chart(bdf.pivot(index="classifier", columns="mode", values="fooling_rate"), stack=False, height=240)
        st.download_button("Batch results (CSV)", bdf.to_csv(index=False), "apt_batch.csv", "text/csv")
