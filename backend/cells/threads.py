"""Run small numerical work single-threaded (torch intra-op and BLAS/OpenMP pools).

The Cells page's work is many small ops (a tiny flow MLP, 700 x 765 PCAs): on a busy 2-core machine,
multi-threaded pools spin and wait for each other, which was measured 5-10x slower than one thread
(500 cells: 30 s with 2 torch threads vs 3 s with 1 under load). The limits are process-wide while active,
so this only trades a little speed of concurrent work elsewhere.
"""

from __future__ import annotations

import contextlib
import functools
import threading

_lock = threading.RLock()
_depth = 0


@contextlib.contextmanager
def single_thread():
    global _depth
    import torch
    from threadpoolctl import threadpool_limits

    with _lock:
        _depth += 1
        old = torch.get_num_threads()
        if old != 1:
            torch.set_num_threads(1)
    try:
        with threadpool_limits(1):
            yield
    finally:
        with _lock:
            _depth -= 1
            if _depth == 0 and old != 1:
                torch.set_num_threads(old)


def one_thread(fn):
    """Decorator form of `single_thread`."""

    @functools.wraps(fn)
    def wrapper(*a, **k):
        with single_thread():
            return fn(*a, **k)

    return wrapper
