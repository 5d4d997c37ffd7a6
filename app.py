"""Latent Lab: navigation and the shared frame (sidebar with version, device and the heavy-job slots)."""

from __future__ import annotations

import streamlit as st

from backend import __version__
from backend.core.jobs import job_gate
from ui import warmup
from ui.registry import HOME, MODELS, available_pages

st.set_page_config(page_title="Latent Lab", page_icon=":material/science:", layout="wide")


@st.cache_resource(show_spinner=False)
def _device_text() -> str:
    from backend.core.device import device_info

    return device_info()


warmup.start()  # once per process: UMAP's numba code compiles in the background (LATENTLAB_WARMUP=0: off)
pages = [st.Page(HOME.file, title=HOME.title, icon=HOME.icon, url_path=HOME.url_path, default=True)]
pages += [st.Page(p.file, title=p.title, icon=p.icon, url_path=p.url_path) for p in available_pages()]
pages += [st.Page(MODELS.file, title=MODELS.title, icon=MODELS.icon, url_path=MODELS.url_path)]
nav = st.navigation(pages)

with st.sidebar:
    st.caption(f"Latent Lab v{__version__}")
    st.caption(f"Compute: {_device_text()}", help="Set LATENTLAB_DEVICE=cpu|cuda to override.")
    gate = job_gate()
    st.caption(f"Heavy jobs: {gate.running} of {gate.limit} slots busy, {gate.waiting} waiting",
               help="Training, probes, attacks and sampling share these slots (LATENTLAB_MAX_JOBS; default: the "
                    "number of cores); a job beyond them waits in a queue that shows its position.")

nav.run()
