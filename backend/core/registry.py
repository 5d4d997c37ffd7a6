"""Checkpoint registry: `assets/checkpoints/NAME.pt` plus its model card `NAME.json`.

A checkpoint is a dict of tensors and plain values (so it loads with `weights_only=True`). The card
says how it was made (command, config, seed, data, steps, wall time, device) and what it measured on
held-out data (metrics, baselines, a `headline` shown on the Home page). Resumable training state
lives outside git in `runs/NAME/state.pt`.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
CHECKPOINT_DIR = Path(os.environ.get("LATENTLAB_CHECKPOINTS", ROOT / "assets" / "checkpoints"))
RUNS_DIR = Path(os.environ.get("LATENTLAB_RUNS", ROOT / "runs"))


class CheckpointError(ValueError):
    """A checkpoint or its card is missing or unreadable; the message names the file."""


@dataclass
class CheckpointInfo:
    name: str
    path: Path
    card_path: Path
    size_bytes: int
    card: dict | None
    problem: str | None  # None when the checkpoint and card look fine


def _paths(name: str, directory: Path | None = None) -> tuple[Path, Path]:
    d = Path(directory) if directory is not None else CHECKPOINT_DIR
    return d / f"{name}.pt", d / f"{name}.json"


def save_checkpoint(name: str, payload: dict, directory: Path | None = None) -> Path:
    """Write NAME.pt atomically (the card is written by `backend.core.training.write_checkpoint`)."""
    import torch

    pt, _ = _paths(name, directory)
    pt.parent.mkdir(parents=True, exist_ok=True)
    tmp = pt.with_suffix(".pt.tmp")
    torch.save(payload, tmp)
    os.replace(tmp, pt)
    return pt


def write_text_atomic(path: Path, text: str) -> None:
    tmp = Path(path).with_suffix(Path(path).suffix + ".tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def read_card(name: str, directory: Path | None = None) -> dict:
    """The model card of NAME; CheckpointError if missing or not valid JSON."""
    _, js = _paths(name, directory)
    if not js.exists():
        raise CheckpointError(f"Model card {js} is missing: train it with `python -m backend.train {name}`.")
    try:
        return json.loads(js.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise CheckpointError(f"Model card {js} is corrupt ({e}); retrain with `python -m backend.train {name}`.") from e


def load_checkpoint(name: str, map_location="cpu", directory: Path | None = None) -> tuple[dict, dict]:
    """Load (payload, card) with `torch.load(weights_only=True)`; CheckpointError names a bad file."""
    import torch

    pt, _ = _paths(name, directory)
    if not pt.exists():
        raise CheckpointError(f"Checkpoint {pt} is missing: train it with `python -m backend.train {name}`.")
    try:
        payload = torch.load(pt, map_location=map_location, weights_only=True)
    except Exception as e:  # torch raises several types for truncated/garbled files
        raise CheckpointError(
            f"Checkpoint {pt} is corrupt or unreadable ({type(e).__name__}); "
            f"retrain with `python -m backend.train {name}`."
        ) from e
    if not isinstance(payload, dict):
        raise CheckpointError(f"Checkpoint {pt} does not hold a dict of weights; retrain it.")
    return payload, read_card(name, directory)


def list_checkpoints(directory: Path | None = None) -> list[CheckpointInfo]:
    """Every NAME.pt or NAME.json in the checkpoint folder, with a problem description if any."""
    d = Path(directory) if directory is not None else CHECKPOINT_DIR
    if not d.exists():
        return []
    names = sorted({p.stem for p in d.glob("*.pt")} | {p.stem for p in d.glob("*.json")})
    out = []
    for name in names:
        pt, js = _paths(name, d)
        problem, card = None, None
        try:
            card = read_card(name, d)
        except CheckpointError as e:
            problem = str(e)
        if not pt.exists():
            problem = f"Checkpoint file {pt.name} is missing (only its card is present)."
        elif problem is None:
            problem = _quick_check(pt, card)
        out.append(CheckpointInfo(name, pt, js, pt.stat().st_size if pt.exists() else 0, card, problem))
    return out


def read_prose(name: str, directory: Path | None = None) -> str | None:
    """The model's one-page description (NAME.md beside the card), or None when there is none."""
    _, js = _paths(name, directory)
    md = js.with_suffix(".md")
    return md.read_text() if md.exists() else None


def _quick_check(pt: Path, card: dict | None) -> str | None:
    """Cheap integrity check without loading tensors: the card holds the ModelCard's fields, its size matches
    the file, the zip header is present."""
    from backend.core.cards import CardError, ModelCard

    if card is not None:
        try:
            ModelCard.from_dict(card)
        except (CardError, TypeError) as e:
            return f"Model card {pt.stem}.json is not a valid model card: {e}"
    size = pt.stat().st_size
    if size == 0:
        return f"Checkpoint file {pt.name} is empty."
    if card and card.get("size_bytes") not in (None, size):
        return f"Checkpoint file {pt.name} is {size} bytes but its card says {card['size_bytes']}: it is corrupt or stale."
    with open(pt, "rb") as f:
        if f.read(2) != b"PK":
            return f"Checkpoint file {pt.name} is not a torch zip archive: it is corrupt."
    return None


def save_train_state(name: str, state: dict) -> Path:
    """Periodic training state for `--resume` (outside git, in runs/NAME/state.pt)."""
    import torch

    p = RUNS_DIR / name / "state.pt"
    p.parent.mkdir(parents=True, exist_ok=True)
    tmp = p.with_suffix(".tmp")
    torch.save(state, tmp)
    os.replace(tmp, p)
    return p


def load_train_state(name: str, map_location="cpu") -> dict | None:
    """The saved training state of NAME, or None when there is none."""
    import torch

    p = RUNS_DIR / name / "state.pt"
    if not p.exists():
        return None
    return torch.load(p, map_location=map_location, weights_only=False)
