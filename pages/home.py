"""Home: what Latent Lab is, and one card per page with its shipped model's headline metric."""

from __future__ import annotations

import streamlit as st

from backend.core import CheckpointError, read_card
from ui.common import ensure_app_frame
from ui.registry import available_pages

ensure_app_frame()
st.title("Latent Lab")
st.markdown(
    "Explore the group's research methods through **live, small models** trained by this project: "
    "every page wraps one published method, runs on a laptop CPU (faster on a GPU) and is honest about "
    "what its model can do: each shows its metric next to a baseline, measured on held-out data."
)


def _headline(name: str | None) -> str:
    if not name:
        return "No trained model: scores are computed live."
    try:
        card = read_card(name)
    except CheckpointError:
        return f"Checkpoint `{name}` is not trained yet."
    h = card.get("headline") or {}
    if "value" not in h:
        return f"Model `{name}`: no headline metric in its card."
    text = f"**{h.get('label', h.get('metric'))}: {h['value']:.3g}**"
    if h.get("baseline") is not None:
        text += f" (baseline {h.get('baseline_label', '')}: {h['baseline']:.3g})"
    return text


pages = available_pages()
if not pages:
    st.info("No method pages are installed yet.")
cols = st.columns(3)
for i, p in enumerate(pages):
    with cols[i % 3].container(border=True):
        st.subheader(p.title)
        st.markdown(p.purpose)
        st.caption(f"Paper: [{p.paper}]({p.link})")
        st.markdown(_headline(p.checkpoint))
        st.page_link(p.file, label=f"Open {p.title}", icon=":material/arrow_forward:")
st.page_link("pages/models.py", label="All model cards", icon=":material/inventory_2:")
