"""A gate for heavy jobs (training, probes, attacks, sampling): at most N run at once, the rest wait in a
first-come queue whose positions a page can show; a waiting or running job can be cancelled.

    gate = job_gate()                      # the process-wide gate, N = LATENTLAB_MAX_JOBS (default: cores)
    with gate.slot("Training CFGen", on_wait=show_position) as job:
        ...                                 # at most N such blocks run at once
    job.load_note(steps_done, budget_s)     # "trained 650 steps of the ~1,500 this budget gives on an idle machine"

`on_wait(position, waiting)` is called about four times a second while the job waits (position 1 = next
to start); it may raise (a page that was cancelled or rerun) and the job leaves the queue. The gate keeps,
for each job, the time-weighted number of jobs running beside it, so a time-budgeted job can say how much
load cut it short: an idle machine would have given about `steps × slowdown` steps, where the slowdown is
the share of the cores the job had (jobs × threads per job / cores), or the 1-minute load average over the
cores when other processes were the load, whichever is larger.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import threading
import time
from collections.abc import Callable


def default_limit() -> int:
    """LATENTLAB_MAX_JOBS if set to a positive integer, else the number of CPU cores."""
    try:
        n = int(os.environ.get("LATENTLAB_MAX_JOBS", "0"))
    except ValueError:
        n = 0
    return n if n > 0 else max(1, os.cpu_count() or 1)


def _threads_per_job() -> int:
    try:
        return max(1, int(os.environ.get("LATENTLAB_THREADS", "0")) or (os.cpu_count() or 1))
    except ValueError:
        return os.cpu_count() or 1


class Job:
    """One heavy job's place in the gate: queued (position ≥ 1), running (position 0) or finished."""

    def __init__(self, gate: JobGate, label: str, number: int):
        self.gate, self.label, self.number = gate, label, number
        self.state = "queued"  # queued | running | done | cancelled
        self.queued_at = time.time()
        self.started_at: float | None = None
        self.ended_at: float | None = None
        self._busy_integral = 0.0  # ∫ (jobs running) dt over this job's run
        self._mark = 0.0
        self._event = threading.Event()

    @property
    def position(self) -> int:
        """0 when running or finished, else 1 + the number of jobs queued before it."""
        return self.gate._position(self)

    @property
    def cancelled(self) -> bool:
        return self._event.is_set()

    def cancel(self) -> None:
        """Leave the queue (or free the slot when running)."""
        self._event.set()
        self.gate._leave(self, "cancelled")

    def elapsed(self) -> float:
        if self.started_at is None:
            return 0.0
        return (self.ended_at or time.time()) - self.started_at

    def mean_running(self) -> float:
        """Time-weighted mean number of jobs running (this one included) while this job ran."""
        with self.gate._cond:
            integral = self._busy_integral
            if self.state == "running":
                integral += len(self.gate._running) * (time.time() - self._mark)
        t = self.elapsed()
        return integral / t if t > 0 else 1.0

    def slowdown(self, load: float | None = None) -> float:
        """How many times slower than on an idle machine this job ran (≥ 1), estimated from the jobs
        beside it (and the load average `load`, read from the OS when None)."""
        cores = max(1, os.cpu_count() or 1)
        shared = self.mean_running() * min(_threads_per_job(), cores) / cores
        if load is None:
            try:
                load = os.getloadavg()[0]
            except (AttributeError, OSError):
                load = 0.0
        return max(1.0, shared, load / cores)

    def load_note(self, steps_done: int, budget_s: float | None = None, load: float | None = None,
                  threshold: float = 1.15) -> str | None:
        """A sentence when load cut a time-budgeted job short, else None."""
        factor = self.slowdown(load)
        if factor < threshold or steps_done <= 0:
            return None
        idle = int(float(f"{steps_done * factor:.2g}"))  # an estimate: two significant digits
        within = f"this {budget_s:g} s budget" if budget_s else "this budget"
        return (f"Trained {steps_done:,} steps of the ~{idle:,} {within} gives on an idle machine: the machine "
                f"was busy (about {factor:.1f}x slower; {self.mean_running():.1f} jobs ran at once on average).")


class JobGate:
    """At most `limit` jobs run at once; the others wait first-come, first-served."""

    def __init__(self, limit: int | None = None):
        self.limit = int(limit) if limit else default_limit()
        self._cond = threading.Condition()
        self._queue: list[Job] = []
        self._running: list[Job] = []
        self._numbers = itertools.count(1)

    # -- bookkeeping (under the lock) ------------------------------------------------------------------
    def _account(self) -> None:
        now = time.time()
        for j in self._running:
            j._busy_integral += len(self._running) * (now - j._mark)
            j._mark = now

    def _admit(self) -> None:
        while self._queue and len(self._running) < self.limit:
            self._account()
            j = self._queue.pop(0)
            j.state, j.started_at, j._mark = "running", time.time(), time.time()
            self._running.append(j)
        self._cond.notify_all()

    def _position(self, job: Job) -> int:
        with self._cond:
            return self._queue.index(job) + 1 if job in self._queue else 0

    def _leave(self, job: Job, state: str) -> None:
        with self._cond:
            if job in self._queue:
                self._queue.remove(job)
            elif job in self._running:
                self._account()
                self._running.remove(job)
            else:
                return
            job.state, job.ended_at = state, time.time()
            self._admit()

    # -- public ----------------------------------------------------------------------------------------
    @property
    def running(self) -> int:
        with self._cond:
            return len(self._running)

    @property
    def waiting(self) -> int:
        with self._cond:
            return len(self._queue)

    def join(self, label: str = "job") -> Job:
        """Queue a job (it starts at once when a slot is free); pair with `wait` and `release`."""
        with self._cond:
            job = Job(self, label, next(self._numbers))
            self._queue.append(job)
            self._admit()
            return job

    def wait(self, job: Job, timeout: float | None = None) -> bool:
        """Block until `job` runs (True), it is cancelled (False) or `timeout` passes (False)."""
        with self._cond:
            return self._cond.wait_for(lambda: job.state != "queued", timeout) and job.state == "running"

    def release(self, job: Job) -> None:
        self._leave(job, "done")

    @contextlib.contextmanager
    def slot(self, label: str = "job", on_wait: Callable[[int, int], None] | None = None, poll: float = 0.25):
        """Run the block once a slot is free; `on_wait(position, waiting)` is called while queued.
        Whatever ends the block (an exception, a cancel, a page rerun) frees the slot or the place."""
        job = self.join(label)
        try:
            while job.state != "running":
                if job.cancelled:
                    from backend.core.progress import Cancelled

                    raise Cancelled(f"{label}: cancelled while waiting for a free slot")
                if on_wait is not None:
                    on_wait(job.position, self.waiting)
                self.wait(job, poll)
            yield job
        finally:
            self._leave(job, "cancelled" if job.state == "queued" else "done")


_GATE: JobGate | None = None
_GATE_LOCK = threading.Lock()


def job_gate() -> JobGate:
    """The process-wide gate (created on first use with `default_limit()`)."""
    global _GATE
    with _GATE_LOCK:
        if _GATE is None:
            _GATE = JobGate()
        return _GATE
