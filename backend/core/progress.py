"""Progress protocol shared by training and sampling.

Backend code receives `progress` (None, a `Progress`, or a plain callable
`fn(step, total, message)`), wraps it with `as_progress`, and calls `p.update(step, total, msg)`.
`update` raises `Cancelled` when the consumer asked to stop, so long loops end promptly. The UI adapts
this to `st.progress`; the CLI to a text progress bar; tests to a list or a cancel flag.
"""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Callable


class Cancelled(Exception):
    """Raised inside long work when its consumer asked to stop."""


class Progress:
    """Base progress sink. Subclass and override `report`; call `cancel()` to stop the work."""

    def __init__(self, callback: Callable | None = None, should_stop: Callable[[], bool] | None = None):
        self._callback = callback
        self._should_stop = should_stop
        self._event = threading.Event()
        self.step = 0
        self.total = 0
        self.message = ""

    def cancel(self) -> None:
        self._event.set()

    @property
    def cancelled(self) -> bool:
        return self._event.is_set() or bool(self._should_stop and self._should_stop())

    def report(self, step: int, total: int, message: str) -> bool | None:
        if self._callback is not None:
            return self._callback(step, total, message)
        return None

    def update(self, step: int, total: int, message: str = "") -> None:
        self.step, self.total, self.message = int(step), int(total), str(message)
        if self.report(self.step, self.total, self.message) is True:
            self.cancel()
        if self.cancelled:
            raise Cancelled(f"cancelled at step {step} of {total}")


class NullProgress(Progress):
    def report(self, step, total, message):
        return None


class TextProgress(Progress):
    """A CLI progress bar on stderr, redrawn at most ten times a second."""

    def __init__(self, label: str = "", width: int = 30, stream=None):
        super().__init__()
        self.label, self.width, self.stream = label, width, stream or sys.stderr
        self._last = 0.0
        self._start = time.time()

    def report(self, step, total, message):
        now = time.time()
        if now - self._last < 0.1 and step < total:
            return None
        self._last = now
        frac = min(1.0, step / total) if total else 0.0
        bar = "#" * int(frac * self.width)
        elapsed = now - self._start
        line = f"\r{self.label} [{bar:<{self.width}}] {step}/{total} {elapsed:6.1f}s {message[:60]:<60}"
        self.stream.write(line)
        if total and step >= total:
            self.stream.write("\n")
        self.stream.flush()
        return None


def as_progress(progress) -> Progress:
    """Normalise None / Progress / callable(step, total, message) -> Progress.

    A plain callable may return True to ask for cancellation.
    """
    if progress is None:
        return NullProgress()
    if isinstance(progress, Progress):
        return progress
    if callable(progress):
        return Progress(callback=progress)
    raise TypeError("progress must be None, a Progress or a callable(step, total, message)")
