"""Page furniture shared by every page: header, error display, progress with cancel, downloads."""

from __future__ import annotations

import contextlib
import time

import streamlit as st

from backend.core.progress import Cancelled, Progress

_frame_fixed = False


def ensure_app_frame() -> None:
    """Make a deep link (e.g. /models) on a fresh server go through app.py's navigation.

    Streamlit starts in its legacy multipage mode when a `pages/` folder exists, and keeps it until
    some run calls `st.navigation`: the first visitor who opens a page URL directly would run that
    page file alone (no app frame, file names in the sidebar) and leave the whole server that way.
    If this run is such a legacy run, switch the mode off and rerun through app.py. This happens at
    most once per process (the first run of a fresh server, which carries no widget events); AppTest
    resets the mode before every run, and a rerun there would swallow the run's button clicks.
    """
    global _frame_fixed
    from streamlit.runtime.pages_manager import PagesManager

    if PagesManager.uses_pages_directory and not _frame_fixed:
        _frame_fixed = True
        PagesManager.uses_pages_directory = False
        st.rerun()


def header(title: str, summary: str, paper: str, link: str, how: str) -> None:
    """Title, one-sentence summary, the paper (authors, venue, link) and a 'How it works' expander."""
    ensure_app_frame()
    st.title(title)
    st.markdown(summary)
    st.caption(f"Paper: [{paper}]({link})")
    with st.expander("How it works"):
        st.markdown(how)


class StreamlitProgress(Progress):
    """Progress sink drawing an `st.progress` bar; any click (e.g. Cancel) interrupts the run."""

    def __init__(self, bar, text_prefix: str = ""):
        super().__init__()
        self.bar, self.prefix = bar, text_prefix
        self._last = 0.0

    def report(self, step, total, message):
        now = time.time()
        if now - self._last > 0.05 or step >= total:
            self._last = now
            frac = min(1.0, step / total) if total else 0.0
            self.bar.progress(frac, text=f"{self.prefix}{message} ({step}/{total})")
        return None


@contextlib.contextmanager
def running(label: str, cancel_key: str, budget_s: float | None = None):
    """Queue the job at the job gate, then show a status box with a progress bar; yield a Progress.

    At most LATENTLAB_MAX_JOBS heavy jobs run at once in this server; a job beyond that waits and shows its
    place in the queue. Cancel (drawn above the box) reruns the script, which stops the work at its next
    progress update (Streamlit interrupts a run at any `st.*` call) and frees its slot or queue place. A
    `Cancelled` from the backend is shown as a warning. With `budget_s` (a time-budgeted training), set
    `progress.steps_done` inside the block: when load cut the run short, a note says by how much.
    """
    from backend.core.jobs import job_gate

    st.button("Cancel", key=cancel_key, help="Stop this run (or leave the queue); results computed so far are kept.")
    with st.status(label, expanded=True) as status:
        bar = st.progress(0.0, text=label)
        p = StreamlitProgress(bar)
        p.steps_done = None
        gate = job_gate()

        def queued(position: int, waiting: int) -> None:
            bar.progress(0.0, text=f"Queued: position {position} of {waiting} (at most {gate.limit} heavy jobs "
                         "run at once on this server; Cancel leaves the queue)")

        try:
            with gate.slot(label, on_wait=queued) as job:
                bar.progress(0.0, text=label)
                yield p
            status.update(label=f"{label}: done", state="complete", expanded=False)
        except Cancelled:
            status.update(label=f"{label}: cancelled", state="error")
            st.warning("Cancelled. The previous results are kept.")
            return
    note = job.load_note(int(p.steps_done or 0), budget_s) if budget_s else None
    if note:
        st.info(note)


@contextlib.contextmanager
def busy(label: str):
    """A spinner for short heavy work that runs without a click (sampling for a page's default view): it takes
    a job-gate slot like `running`, and while it waits a note shows its queue position."""
    from backend.core.jobs import job_gate

    note, gate = st.empty(), job_gate()

    def queued(position: int, waiting: int) -> None:
        note.info(f"Queued: position {position} of {waiting} (at most {gate.limit} heavy jobs run at once on "
                  "this server).", icon=":material/hourglass_top:")

    with st.spinner(label), gate.slot(label, on_wait=queued):
        note.empty()
        yield


def show_error(e: Exception | str, file: str | None = None) -> None:
    """An `st.error` (call it outside any expander or status box) naming the file, if any, and the problem in
    words: object reprs (`<_io.BytesIO object at 0x...>`) and exception class names are removed."""
    import re

    text = re.sub(r"\s*\(?<[^<>]* at 0x[0-9a-fA-F]+>\)?", "", str(e)).strip() or "The action failed."
    st.error(f"**{file}**: {text}" if file else text)


def was_cancelled(cancel_key: str) -> bool:
    """True on the rerun caused by clicking the Cancel button rendered by `running`."""
    if st.session_state.get(cancel_key):
        st.info("The run was cancelled; earlier results are kept.")
        return True
    return False
