"""Shared machinery every domain uses: device, seeding, checkpoints, progress, job gate, cache, uploads."""

from backend.core.cache import cached, clear_cache
from backend.core.cards import CardError, ModelCard, Target
from backend.core.device import configure_threads, device_info, get_device
from backend.core.jobs import JobGate, job_gate
from backend.core.media import gif_bytes, png_bytes, upscale, webm_bytes
from backend.core.progress import Cancelled, Progress, as_progress
from backend.core.registry import (
    CHECKPOINT_DIR,
    RUNS_DIR,
    CheckpointError,
    CheckpointInfo,
    list_checkpoints,
    load_checkpoint,
    load_train_state,
    read_card,
    read_prose,
    save_checkpoint,
    save_train_state,
)
from backend.core.seed import set_seed

__all__ = [
    "CardError",
    "ModelCard",
    "Target",
    "CHECKPOINT_DIR",
    "RUNS_DIR",
    "Cancelled",
    "CheckpointError",
    "CheckpointInfo",
    "Progress",
    "as_progress",
    "cached",
    "clear_cache",
    "configure_threads",
    "device_info",
    "get_device",
    "JobGate",
    "job_gate",
    "gif_bytes",
    "png_bytes",
    "upscale",
    "webm_bytes",
    "list_checkpoints",
    "load_checkpoint",
    "load_train_state",
    "read_card",
    "read_prose",
    "save_checkpoint",
    "save_train_state",
    "set_seed",
]
