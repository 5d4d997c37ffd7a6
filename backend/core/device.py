"""Compute device choice: CUDA when present, else CPU; `LATENTLAB_DEVICE` overrides.

Torch threads are capped (default: min(2, cores), `LATENTLAB_THREADS` overrides) so that two
sessions running at once do not oversubscribe a small machine.
"""

from __future__ import annotations

import os

_configured = False


def configure_threads(n: int | None = None) -> int:
    """Set torch's intra-op thread count once per process (or to `n` when given)."""
    global _configured
    import torch

    if n is None:
        if _configured:
            return torch.get_num_threads()
        env = os.environ.get("LATENTLAB_THREADS")
        n = int(env) if env else min(2, os.cpu_count() or 1)
    n = max(1, int(n))
    torch.set_num_threads(n)
    _configured = True
    return n


def get_device(prefer: str | None = None):
    """Return the torch device to use.

    Order: the explicit `prefer` argument, then the `LATENTLAB_DEVICE` env var, then CUDA when
    available, else CPU. Asking for CUDA on a machine without it raises ValueError.
    """
    import torch

    configure_threads()
    choice = (prefer or os.environ.get("LATENTLAB_DEVICE") or "").strip().lower()
    if choice in ("", "auto"):
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if choice.startswith("cuda") and not torch.cuda.is_available():
        raise ValueError(f"Device {choice!r} was requested but CUDA is not available on this machine; use 'cpu'.")
    try:
        return torch.device(choice)
    except RuntimeError as e:
        raise ValueError(f"Unknown device {choice!r}: use 'cpu', 'cuda' or 'cuda:N'.") from e


def device_info(device=None) -> str:
    """A short human description: the CUDA device name, or CPU with its thread count."""
    import torch

    dev = device if device is not None else get_device()
    dev = torch.device(dev)
    if dev.type == "cuda":
        return f"CUDA: {torch.cuda.get_device_name(dev)}"
    return f"CPU ({torch.get_num_threads()} threads of {os.cpu_count()} cores)"
