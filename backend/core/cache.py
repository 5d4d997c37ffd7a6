"""Process-wide model cache: one instance per (factory, arguments, device), shared by all sessions.

`@cached` memoises a loader; concurrent first callers wait while exactly one builds the value.
Models that are not thread-safe at inference hold their own `threading.Lock` (see `LockedModel`).
"""

from __future__ import annotations

import functools
import threading

_values: dict = {}
_key_locks: dict = {}
_guard = threading.Lock()


def cached(fn):
    """Memoise `fn(*args, **kwargs)` for the life of the process (arguments must be hashable)."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        key = (fn.__module__, fn.__qualname__, args, tuple(sorted(kwargs.items())))
        if key in _values:
            return _values[key]
        with _guard:
            lock = _key_locks.setdefault(key, threading.Lock())
        with lock:
            if key not in _values:
                _values[key] = fn(*args, **kwargs)
        return _values[key]

    wrapper.cache_clear = lambda: clear_cache(fn)  # type: ignore[attr-defined]
    return wrapper


def clear_cache(fn=None) -> None:
    """Forget cached values (of one function, or all)."""
    with _guard:
        for key in list(_values):
            if fn is None or (key[0], key[1]) == (fn.__module__, fn.__qualname__):
                del _values[key]


class LockedModel:
    """Mixin giving a model a re-entrant lock for inference that mutates state (RNG, buffers)."""

    def __init__(self):
        self.lock = threading.RLock()
