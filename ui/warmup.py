"""Warm slow first-use costs in a background thread when the server starts, so no visitor waits for them.

The first UMAP in a process compiles umap-learn's and pynndescent's numba code and fits the bundled cells'
UMAP (about 60-100 s of CPU on a laptop). `start()` (called by app.py, once per process) runs that at low
priority in a daemon thread; `umap_note(placement)` is the sentence a page shows while a visitor needs UMAP
before the warm-up finished. LATENTLAB_WARMUP=0 turns the warm-up off (the tests do, to keep CPU free).
"""

from __future__ import annotations

import os
import threading
import time

_lock = threading.Lock()
_state = {"started": None, "finished": None, "error": None}
_done = threading.Event()


def enabled() -> bool:
    return os.environ.get("LATENTLAB_WARMUP", "1").strip().lower() not in ("0", "false", "no", "off")


def _warm_umap() -> None:
    try:
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), 5)  # Linux: this thread only, a little lower
    except (AttributeError, OSError):
        pass
    try:
        from backend.cells import load_dataset, load_model, reference_map

        ref = reference_map(load_model("pbmc68k"), load_dataset("pbmc68k"))
        if ref.method == "umap":
            ref.umap_positions(ref.pcs[:8])  # fits the real-cell UMAP once and compiles the transform path
    except Exception as e:  # noqa: BLE001 - a failed warm-up only means the first visitor pays the cost
        _state["error"] = f"{type(e).__name__}: {e}"
    finally:
        _state["finished"] = time.time()
        _done.set()


def start() -> bool:
    """Start the warm-up thread unless it ran or runs already, or LATENTLAB_WARMUP=0; True if started now."""
    with _lock:
        if _state["started"] is not None or not enabled():
            return False
        _state["started"] = time.time()
    threading.Thread(target=_warm_umap, name="latentlab-warmup", daemon=True).start()
    return True


def umap_ready() -> bool:
    return _done.is_set() and _state["error"] is None


def umap_note(placement: str) -> str:
    """'' when UMAP is warm or not needed, else what the visitor waits for (appended to a spinner's text)."""
    if placement not in ("umap", "joint") or umap_ready():
        return ""
    if _state["started"] is not None and not _done.is_set():
        return (f" UMAP is still warming up in the background (started {time.time() - _state['started']:.0f} s ago; "
                "about a minute in all): this run waits for the compiled code, later runs are fast.")
    return " The first UMAP in this server compiles its code first (about a minute); later runs are fast."
