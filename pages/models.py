"""Models: every checkpoint in assets/checkpoints with its model card and prose, problems flagged in words."""

from __future__ import annotations

import json

import pandas as pd
import streamlit as st

from backend.core import CHECKPOINT_DIR, list_checkpoints, read_prose
from ui.common import ensure_app_frame
from ui.state import url_state


def overview(infos) -> None:
    def row(i):
        card, h = i.card or {}, (i.card or {}).get("headline") or {}
        targets = card.get("targets") or []
        return {"model": i.name, "status": "problem" if i.problem else "ok", "size (MB)": round(i.size_bytes / 1e6, 2),
                "steps": card.get("steps"), "wall time (min)": round((card.get("wall_time_s") or 0) / 60, 1),
                "headline": h.get("label"), "value": h.get("value"), "baseline": h.get("baseline"),
                "targets met": f"{sum(t.get('met', False) for t in targets)}/{len(targets)}" if targets else "–"}

    st.dataframe(pd.DataFrame([row(i) for i in infos]), hide_index=True, width="stretch")
    for i in infos:
        if i.problem:
            st.error(f"**{i.name}**: {i.problem}")


def card_view(info) -> None:
    card = info.card or {}
    st.subheader(card.get("title") or info.name)
    if info.problem:
        st.error(info.problem)
    c1, c2, c3, c4 = st.columns(4)
    c1.metric("File size", f"{info.size_bytes / 1e6:.2f} MB")
    c2.metric("Steps", card.get("steps", "–"))
    c3.metric("Wall time", f"{(card.get('wall_time_s') or 0) / 60:.1f} min")
    c4.metric("Trained on", card.get("device", "–"))
    if card.get("paper"):
        st.markdown(f"**Paper:** {card['paper']}")
    st.markdown(f"**Training command:** `{card.get('command', 'unknown')}`")
    for label, key in (("Data", "data"), ("Readout", "readout")):
        if card.get(key):
            st.markdown(f"**{label}:** {card[key]}")
    metrics_table(card)
    if card.get("limitations"):
        st.markdown("**Limitations**\n" + "\n".join(f"- {x}" for x in card["limitations"]))
    prose = read_prose(info.name)
    if prose:
        with st.expander("About this model", expanded=True):
            st.markdown(prose)
    with st.expander("Config"):
        st.json(card.get("config", {}))
    st.download_button("Download model card", json.dumps(card, indent=2), file_name=f"{info.name}.json",
                       mime="application/json")


def metrics_table(card: dict) -> None:
    def flat(kind, d):
        for k, v in d.items():
            for sub, x in (v.items() if isinstance(v, dict) else [("", v)]):
                yield {"metric": f"{k} · {sub}" if sub else k, "value": x, "kind": kind}

    rows = [*flat("model", card.get("metrics") or {}), *flat("baseline", card.get("baselines") or {})]
    if rows:
        st.markdown("**Held-out metrics**")
        st.dataframe(pd.DataFrame(rows).astype({"value": str}), hide_index=True, width="stretch")
    targets = card.get("targets") or []
    if targets:
        st.markdown("**Targets**")
        st.dataframe(pd.DataFrame([{"metric": t["metric"], "target": f"{t['direction']} {t['threshold']}",
                                    "value": t.get("value"), "met": "yes" if t.get("met") else "no"}
                                   for t in targets]), hide_index=True, width="stretch")


ensure_app_frame()
st.title("Models")
st.markdown(f"Every checkpoint in `{CHECKPOINT_DIR.name}/` with its model card: how it was trained and what it "
            "measured on held-out data. Retrain any of them with the command shown.")
infos = list_checkpoints()
if not infos:
    st.warning(f"No checkpoints found in {CHECKPOINT_DIR}. Train them with `python -m backend.train all`.")
    st.stop()
names = [i.name for i in infos]
s = url_state("models", {"model": names[0]})
if s["model"] not in names:
    s["model"] = names[0]
overview(infos)
st.selectbox("Model card", names, key=s.key("model"))
s.sync()
card_view(next(i for i in infos if i.name == s["model"]))
