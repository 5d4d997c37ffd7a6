"""The shared `running()` and `busy()` helpers under the job gate (AppTest)."""

from __future__ import annotations

import os
import threading
import time

import pytest

from backend.core import jobs


def _script():
    import time

    import streamlit as st

    from ui.common import running

    with running("Training", "t.cancel", budget_s=10) as p:
        time.sleep(0.3)
        p.steps_done = 650
    st.session_state["finished_at"] = time.time()


@pytest.fixture
def gate(monkeypatch):
    monkeypatch.setenv("LATENTLAB_THREADS", str(os.cpu_count() or 1))
    monkeypatch.setattr(jobs, "_GATE", jobs.JobGate(limit=1))
    return jobs._GATE


def test_a_job_waits_for_a_free_slot_then_runs(gate):
    from streamlit.testing.v1 import AppTest

    blocker = gate.join("someone else's training")
    threading.Timer(1.5, gate.release, args=(blocker,)).start()
    t0 = time.time()
    at = AppTest.from_function(_script, default_timeout=60).run()
    assert not at.exception, [e.value for e in at.exception]
    assert at.session_state["finished_at"] - t0 >= 1.4  # it waited for the blocker
    assert at.status[0].label == "Training: done" and gate.running == 0 and gate.waiting == 0


def test_a_budgeted_job_beside_another_says_load_cut_it_short(gate, monkeypatch):
    from streamlit.testing.v1 import AppTest

    monkeypatch.setattr(gate, "limit", 2)
    other = gate.join("other")  # runs beside ours for all of its run
    try:
        at = AppTest.from_function(_script, default_timeout=60).run()
    finally:
        gate.release(other)
    assert not at.exception, [e.value for e in at.exception]
    notes = [i.value for i in at.info]
    assert any(n.startswith("Trained 650 steps of the ~") and "this 10 s budget gives on an idle machine" in n
               for n in notes), notes


def _busy_script():
    import time

    import streamlit as st

    from backend.core.jobs import job_gate
    from ui.common import busy

    with busy("Generating cells"):
        st.session_state["seen_running"] = job_gate().running
    st.session_state["finished_at"] = time.time()


def test_busy_sampling_waits_in_the_queue_and_holds_a_slot(gate):
    from streamlit.testing.v1 import AppTest

    seen = []
    blocker = gate.join("someone else's training")

    def release():  # once the page's sampling has queued behind the blocker (or after 30 s), plus 1 s
        deadline = time.time() + 30
        while gate.waiting == 0 and time.time() < deadline:
            time.sleep(0.05)
        time.sleep(1.0)
        seen.append((gate.running, gate.waiting, time.time()))
        gate.release(blocker)

    threading.Thread(target=release, daemon=True).start()
    at = AppTest.from_function(_busy_script, default_timeout=60).run()
    assert not at.exception, [e.value for e in at.exception]
    (running, waiting, released_at), = seen
    assert (running, waiting) == (1, 1)  # the blocker ran while the page's sampling waited in the queue
    assert at.session_state["finished_at"] >= released_at
    assert at.session_state["seen_running"] == 1 and gate.running == 0 and gate.waiting == 0
