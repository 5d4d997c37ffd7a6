"""The heavy-job gate: a limit, first-come queue positions, cancel while waiting or running, the load note."""

from __future__ import annotations

import threading
import time

import pytest

from backend.core.jobs import JobGate, default_limit
from backend.core.progress import Cancelled


def test_limit_from_env(monkeypatch):
    monkeypatch.setenv("LATENTLAB_MAX_JOBS", "3")
    assert default_limit() == 3 and JobGate().limit == 3
    monkeypatch.setenv("LATENTLAB_MAX_JOBS", "nonsense")
    assert default_limit() >= 1


def test_at_most_limit_run_and_the_rest_queue_in_order():
    gate = JobGate(limit=2)
    jobs = [gate.join(f"j{i}") for i in range(5)]
    assert [j.state for j in jobs] == ["running", "running", "queued", "queued", "queued"]
    assert [j.position for j in jobs] == [0, 0, 1, 2, 3]
    assert gate.running == 2 and gate.waiting == 3
    gate.release(jobs[0])
    assert jobs[2].state == "running" and [j.position for j in jobs[3:]] == [1, 2]
    jobs[3].cancel()  # leaving the queue moves the ones behind up
    assert jobs[3].state == "cancelled" and jobs[4].position == 1 and gate.running == 2
    jobs[1].cancel()  # cancelling a running job frees its slot
    assert jobs[4].state == "running" and gate.waiting == 0


def test_threads_never_exceed_the_limit_and_all_finish():
    gate, lock = JobGate(limit=2), threading.Lock()
    now, peak, seen_positions = [0], [0], []

    def work(i):
        with gate.slot(f"t{i}", on_wait=lambda pos, n: seen_positions.append(pos), poll=0.01):
            with lock:
                now[0] += 1
                peak[0] = max(peak[0], now[0])
            time.sleep(0.05)
            with lock:
                now[0] -= 1

    threads = [threading.Thread(target=work, args=(i,)) for i in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    assert peak[0] == 2 and gate.running == 0 and gate.waiting == 0
    assert seen_positions and min(seen_positions) == 1  # waiting jobs were told their place


def test_cancel_while_waiting_raises_cancelled_and_frees_the_place():
    gate = JobGate(limit=1)
    blocker = gate.join("blocker")
    result = {}

    def waiter():
        try:
            with gate.slot("w", poll=0.01, on_wait=lambda pos, n: result.setdefault("pos", pos)):
                result["ran"] = True
        except Cancelled:
            result["cancelled"] = True

    t = threading.Thread(target=waiter)
    t.start()
    deadline = time.time() + 5
    while gate.waiting == 0 and time.time() < deadline:
        time.sleep(0.01)
    gate._queue[0].cancel()
    t.join(5)
    assert result == {"pos": 1, "cancelled": True} and gate.waiting == 0
    gate.release(blocker)
    assert gate.running == 0


def test_an_exception_or_rerun_inside_the_block_frees_the_slot():
    gate = JobGate(limit=1)
    with pytest.raises(RuntimeError):
        with gate.slot("x"):
            raise RuntimeError("page rerun")
    assert gate.running == 0
    with gate.slot("y") as job:  # the slot is usable again
        assert job.state == "running"


def test_load_note_only_when_load_cut_the_budget_short():
    gate = JobGate(limit=4)
    solo = gate.join("solo")
    time.sleep(0.05)
    assert solo.load_note(1500, 60, load=0.0) is None  # alone on an idle machine: nothing to say
    gate.release(solo)
    a, b = gate.join("a"), gate.join("b")
    time.sleep(0.1)
    gate.release(b)
    gate.release(a)
    assert 1.5 < a.mean_running() <= 2.0
    # the load average (other processes) counts too
    assert solo.slowdown(load=2.0 * (__import__("os").cpu_count() or 1)) == pytest.approx(2.0)
    note = solo.load_note(650, 60, load=2.3 * (__import__("os").cpu_count() or 1))
    assert note is not None and note.startswith("Trained 650 steps of the ~1,500 this 60 s budget gives on an idle")


def test_mean_running_counts_the_jobs_beside_it(monkeypatch):
    import os

    monkeypatch.setenv("LATENTLAB_THREADS", str(os.cpu_count() or 1))  # each job can use every core
    gate = JobGate(limit=3)
    a = gate.join("a")
    b, c = gate.join("b"), gate.join("c")
    time.sleep(0.1)
    gate.release(b)
    gate.release(c)
    gate.release(a)
    assert a.mean_running() > 2.5  # three jobs ran at once for (nearly) all of a's run
    note = a.load_note(500, 30, load=0.0)
    assert note is not None and "~1,500" in note
