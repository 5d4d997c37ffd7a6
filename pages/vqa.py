"""VQA: are object-centric representations useful for reasoning? Frozen slots vs dense features vs ground truth."""

from __future__ import annotations

import numpy as np
import pandas as pd
import plotly.express as px
import streamlit as st

from backend.core import CheckpointError, upscale
from backend.vqa import ANSWERS, BROWSE_SEED, LABELS, REPRESENTATIONS, ask, report
from ui.common import header, show_error
from ui.state import url_state

PAGE = "vqa"
HOW = """
1. **Questions** come from the scene generator's ground truth, 10 templates: count (all / by shape / by colour),
   exist (colour + shape), query shape, query colour, left-of, above, bigger-than, compare counts. Answers are
   balanced within each template; a colour is named only when every object's hue is clearly inside or outside its
   hue bin; objects are named by a unique shape or a unique colour.
2. **Representations** are frozen and their features cached: the 5 slots of the shipped `slots-sprites` model,
   the same slots plus each slot's mask centroid and area, the same model's CNN encoder pooled to a 4x4 / 8x8
   grid (with cell coordinates), and the bounds: ground-truth object tokens and the question alone.
3. **Downstream**: one transformer per representation (4 blocks, d=64: [CLS] + projected tokens + question
   words), trained on the same batches for the same steps (one-cycle schedule). Accuracy on held-out test scenes,
   with 95 % Wilson intervals. The attention shown is [CLS] over the tokens in the last block, averaged over heads.
"""

header("VQA over frozen representations",
       "Ask questions about generated scenes and see how a small transformer answers from **object slots**, "
       "**dense CNN features**, **ground-truth objects** or **the question alone**.",
       "Karimi Mamaghan, Papa, Johansson, Bauer, Dittadi: Exploring the Effectiveness of Object-Centric "
       "Representations in Visual Question Answering (ICLR 2025)", "https://arxiv.org/abs/2407.15589", HOW)

s = url_state(PAGE, {"scene": 0, "question": "", "custom": ""}, {"scene": (0, 9_999)})


def load_report():
    try:
        return report()
    except (CheckpointError, FileNotFoundError, KeyError) as e:
        show_error(f"The VQA models are not available ({e}). Train them with `python -m backend.train vqa`.")
        st.stop()


rep = load_report()
reps = list(rep.table["representation"].unique())


def controls() -> str | None:
    c1, c2 = st.columns([1, 3])
    c1.number_input("Scene", 0, 9_999, step=1, key=s.key("scene"),
                    help=f"Held-out scenes (seed {BROWSE_SEED}); training used seeds >= 2,300,000.")
    c2.text_input("Compose a question (optional)", key=s.key("custom"),
                  placeholder="e.g. is the red object left of the square",
                  help="Any question made of the templates' words; it overrides the question picked below.")
    s.sync()
    return s["custom"].strip() or s["question"] or None


def ask_scene(question: str | None):
    try:
        return ask(BROWSE_SEED, int(s["scene"]), question)
    except ValueError as e:
        show_error(e)
        return ask(BROWSE_SEED, int(s["scene"]), None)


def show_answers(a) -> None:
    texts = [t for t, _, _ in a.questions]
    pick = texts.index(a.question) if a.question in texts else 0
    left, right = st.columns([1, 2.2])
    with left:
        st.image(upscale(a.image, 6), caption=f"Scene {s['scene']}: {len(a.objects)} objects", width=200)
        chosen = st.selectbox("Pick a question about this scene", texts, index=pick, key=f"{PAGE}.pick")
        if chosen != s["question"] and not s["custom"].strip():
            s["question"] = chosen
            s.sync()
            st.rerun()
    with right:
        st.markdown(f"**Q:** {a.question}?  \n**True answer:** {a.truth or '— (not a template question here)'}")
        rows = []
        for r, p in a.probs.items():
            i = int(np.argmax(p))
            rows.append({"representation": LABELS[r], "answer": ANSWERS[i], "probability": round(float(p[i]), 3),
                         "correct": None if a.truth is None else ANSWERS[i] == a.truth})
        st.dataframe(pd.DataFrame(rows), hide_index=True, use_container_width=True)
        st.caption(f"All {len(a.probs)} models answered in {a.seconds * 1000:.0f} ms (features included).")
        probs = pd.DataFrame([{"representation": LABELS[r], "answer": ANSWERS[k], "p": float(p[k])}
                              for r, p in a.probs.items() for k in np.argsort(p)[::-1][:3]])
        fig = px.bar(probs, x="p", y="representation", color="answer", orientation="h", height=300,
                     title="Top-3 answer probabilities per representation")
        st.plotly_chart(fig, use_container_width=True)


def show_attention(a) -> None:
    if not a.attention:
        return
    st.subheader("Where the answer looked: attention over slots")
    st.caption("Each slot's mask tinted by the [CLS] attention it receives in the last block (brighter = more).")
    cols = st.columns(len(a.attention))
    for col, (r, att) in zip(cols, a.attention.items(), strict=True):
        m = a.masks[r]
        w = att / max(float(att.max()), 1e-8)
        heat = np.clip((m * w[:, None, None]).sum(0), 0, 1)
        img = (a.image.astype(np.float32) * (0.25 + 0.75 * heat[..., None])).astype(np.uint8)
        col.image(upscale(img, 5), caption=LABELS[r], width=160)
        col.caption(" · ".join(f"slot {k}: {v:.2f}" for k, v in enumerate(att)))


def show_results() -> None:
    st.subheader("Accuracy on the test scenes, by question type")
    df = rep.table.copy()
    df["err_plus"], df["err_minus"] = df["high"] - df["accuracy"], df["accuracy"] - df["low"]
    fig = px.bar(df, x="type", y="accuracy", color="label", barmode="group", error_y="err_plus",
                 error_y_minus="err_minus", height=380)
    fig.update_yaxes(range=[0, 1])
    st.plotly_chart(fig, use_container_width=True)
    wide = df.pivot(index="label", columns="type", values="accuracy").round(3)
    st.dataframe(wide, use_container_width=True)
    n = rep.n_questions
    st.caption(f"Questions: {n.get('train')} training, {n.get('val')} validation, {n.get('test')} test. "
               "Bars: 95 % Wilson intervals over test questions (one training seed).")
    missing = [LABELS[r] for r in REPRESENTATIONS if r not in reps]
    if missing:
        st.info("Not trained for the shipped checkpoint (CPU budget): " + ", ".join(missing) + ".")
    for t in rep.card.get("targets", []):
        (st.success if t["met"] else st.warning)(
            f"Target {t['metric']} {t['direction']} {t['threshold']}: measured {t['value']} "
            f"({'met' if t['met'] else 'NOT met'}).")


def show_curves() -> None:
    c1, c2 = st.columns(2)
    snaps = rep.steps
    if snaps:
        long = pd.DataFrame([{"step": sn["step"], "representation": LABELS[r], "accuracy": sn[r]}
                             for sn in snaps for r in reps if r in sn])
        c1.plotly_chart(px.line(long, x="step", y="accuracy", color="representation", markers=True, height=330,
                                title="Validation accuracy vs training steps"), use_container_width=True)
    up = rep.upstream
    overall = rep.table[rep.table["type"] == "all"].set_index("representation")["accuracy"]
    pts = pd.DataFrame([{"representation": LABELS[r], "FG-ARI": v, "VQA accuracy": float(overall[r])}
                        for r, v in up.items() if r in overall.index])
    if len(pts):
        c2.plotly_chart(px.scatter(pts, x="FG-ARI", y="VQA accuracy", text="representation", height=330,
                                   title="Upstream FG-ARI vs VQA accuracy"), use_container_width=True)
        if len(pts) < 4:
            c2.caption(f"Only {len(pts)} upstream models with masks were trained; the issue asks for at least 4.")
    comp = pd.DataFrame([{"representation": LABELS.get(r, r), **v} for r, v in rep.compute.items()])
    st.markdown("**Compute** (2 shared CPU cores; features in ms per scene, downstream time apportioned by forward "
                "time)")
    st.dataframe(comp, hide_index=True, use_container_width=True)


question = controls()
answered = ask_scene(question)
show_answers(answered)
show_attention(answered)
show_results()
show_curves()
