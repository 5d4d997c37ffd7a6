"""Models: every checkpoint in assets/checkpoints with its model card, problems flagged in words."""

from __future__ import annotations

import json

import pandas as pd
import streamlit as st

from backend.core.registry import CHECKPOINT_DIR, list_checkpoints
from ui.common import ensure_app_frame
from ui.state import url_state

ensure_app_frame()
st.title("Models")
st.markdown(
    f"Every checkpoint in `{CHECKPOINT_DIR.name}/` with its model card: how it was trained and what it "
    "measured on held-out data. Retrain any of them with the command shown."
)

infos = list_checkpoints()
if not infos:
    st.warning(f"No checkpoints found in {CHECKPOINT_DIR}. Train them with `python -m backend.train all`.")
    st.stop()

names = [i.name for i in infos]
s = url_state("models", {"model": names[0]})
if s["model"] not in names:
    s["model"] = names[0]


def _status(i) -> str:
    return "problem" if i.problem else "ok"


table = pd.DataFrame([
    {
        "model": i.name,
        "status": _status(i),
        "size (MB)": round(i.size_bytes / 1e6, 2),
        "steps": (i.card or {}).get("steps"),
        "wall time (min)": round(((i.card or {}).get("wall_time_s") or 0) / 60, 1),
        "headline": ((i.card or {}).get("headline") or {}).get("label"),
        "value": ((i.card or {}).get("headline") or {}).get("value"),
        "baseline": ((i.card or {}).get("headline") or {}).get("baseline"),
    }
    for i in infos
])
st.dataframe(table, hide_index=True, width="stretch")

bad = [i for i in infos if i.problem]
for i in bad:
    st.error(f"**{i.name}**: {i.problem}")

st.selectbox("Model card", names, key=s.key("model"))
s.sync()
info = next(i for i in infos if i.name == s["model"])
card = info.card or {}
st.subheader(info.name)
if info.problem:
    st.error(info.problem)
c1, c2, c3, c4 = st.columns(4)
c1.metric("File size", f"{info.size_bytes / 1e6:.2f} MB")
c2.metric("Steps", card.get("steps", "–"))
c3.metric("Wall time", f"{(card.get('wall_time_s') or 0) / 60:.1f} min")
c4.metric("Trained on", card.get("device", "–"))
st.markdown(f"**Training command:** `{card.get('command', 'unknown')}`")
if card.get("data"):
    st.markdown(f"**Data:** {card['data']}")
if card.get("why"):
    st.markdown(f"**Design choices:** {card['why']}")
metrics = card.get("metrics") or {}
baselines = card.get("baselines") or {}
if metrics or baselines:
    st.markdown("**Held-out metrics**")
    rows = [{"metric": k, "value": v, "kind": "model"} for k, v in metrics.items() if not isinstance(v, (dict, list))]
    rows += [{"metric": k, "value": v, "kind": "baseline"} for k, v in baselines.items() if not isinstance(v, (dict, list))]
    st.dataframe(pd.DataFrame(rows).astype({"value": str}), hide_index=True, width="stretch")
with st.expander("Config"):
    st.json(card.get("config", {}))
with st.expander("Full model card (JSON)"):
    st.code(json.dumps(card, indent=2), language="json")
st.download_button("Download model card", json.dumps(card, indent=2), file_name=f"{info.name}.json",
                   mime="application/json")
