"""Model cards: fixed fields in `NAME.json` (at most 8 KB), prose in `NAME.md` (at most one page).

A card says how a checkpoint was made (command, config, data, device, steps, wall time) and what it
measured on held-out data (metrics next to baselines, targets with their thresholds, the inference
settings those numbers use). Detailed evaluation tables (per-frame curves, sweeps, snapshot tables) live
in the checkpoint payload under `"evaluation"`, not in the card.
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
import json
import math
from dataclasses import dataclass, field
from pathlib import Path

MAX_CARD_BYTES = 8 * 1024
MAX_PROSE_LINES = 60


class CardError(ValueError):
    """A card does not hold the fixed fields, or holds values of the wrong kind."""


Number = int | float


@dataclass
class Target:
    """A quality target: `metric` must be >= (or <=) `threshold`; `met` says whether the model does."""

    metric: str
    threshold: float
    value: float | None
    direction: str = ">="  # ">=" or "<="
    met: bool = False

    def __post_init__(self):
        if self.direction not in (">=", "<="):
            raise CardError(f"target {self.metric}: direction must be '>=' or '<=', not {self.direction!r}")
        v = self.value
        self.met = bool(v is not None and math.isfinite(v)
                        and (v >= self.threshold if self.direction == ">=" else v <= self.threshold))


@dataclass
class ModelCard:
    name: str
    title: str
    paper: str
    data: str
    config: dict
    command: str
    device: str
    steps: int
    wall_time_s: float
    metrics: dict
    baselines: dict
    targets: list = field(default_factory=list)  # Target records
    headline: dict = field(default_factory=dict)  # metric, label, value, baseline, baseline_label
    readout: str = ""  # the inference settings the metrics use
    limitations: list = field(default_factory=list)  # short sentences
    created: str = ""
    torch_version: str = ""
    size_bytes: int = 0  # of NAME.pt, so the registry can spot a stale or truncated file

    def __post_init__(self):
        self.targets = [t if isinstance(t, Target) else Target(**t) for t in self.targets]
        for label, d in (("metrics", self.metrics), ("baselines", self.baselines)):
            for k, v in d.items():
                if not _is_value(v):
                    raise CardError(f"card {self.name}: {label}[{k!r}] must be a number or a dict of numbers")
        if self.headline and not {"metric", "label", "value"} <= set(self.headline):
            raise CardError(f"card {self.name}: headline needs metric, label and value")
        if not self.created:
            self.created = _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds")
        if not self.torch_version:
            import torch

            self.torch_version = torch.__version__

    def to_dict(self) -> dict:
        return json.loads(self.to_json())

    def to_json(self) -> str:
        text = json.dumps(dataclasses.asdict(self), indent=1, default=_json_default, allow_nan=False) + "\n"
        if len(text.encode()) > MAX_CARD_BYTES:
            raise CardError(f"card {self.name} is {len(text.encode())} bytes (at most {MAX_CARD_BYTES}): move detail "
                            "into the checkpoint's 'evaluation' entry")
        return text

    @classmethod
    def from_dict(cls, d: dict) -> ModelCard:
        names = {f.name for f in dataclasses.fields(cls)}
        extra = set(d) - names
        if extra:
            raise CardError(f"card {d.get('name', '?')} has fields outside the ModelCard: {sorted(extra)}")
        missing = {f.name for f in dataclasses.fields(cls)
                   if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING} - set(d)
        if missing:
            raise CardError(f"card {d.get('name', '?')} lacks fields: {sorted(missing)}")
        return cls(**d)

    def targets_missed(self) -> list[Target]:
        return [t for t in self.targets if not t.met]


def _is_value(v) -> bool:
    if v is None or isinstance(v, bool):
        return v is None
    if isinstance(v, Number):
        return True
    return isinstance(v, dict) and all(x is None or (isinstance(x, Number) and not isinstance(x, bool))
                                       for x in v.values())


def _json_default(o):
    import numpy as np

    if isinstance(o, np.generic):
        return o.item()
    if isinstance(o, np.ndarray):
        return o.tolist()
    if isinstance(o, Path):
        return str(o)
    raise TypeError(f"not JSON serialisable: {type(o).__name__}")


def rounded(d: dict, digits: int = 4) -> dict:
    """Numbers (and dicts of numbers) rounded for a card; numpy scalars become plain floats."""
    out = {}
    for k, v in d.items():
        if isinstance(v, dict):
            out[k] = rounded(v, digits)
        elif v is None or isinstance(v, (bool, int)):
            out[k] = v
        else:
            out[k] = round(float(v), digits)
    return out


def validate_card_file(path: Path) -> ModelCard:
    """Parse a card file into a ModelCard; CardError names what is wrong (size, fields, prose file)."""
    path = Path(path)
    raw = path.read_bytes()
    if len(raw) > MAX_CARD_BYTES:
        raise CardError(f"{path.name} is {len(raw)} bytes; a card holds at most {MAX_CARD_BYTES}")
    card = ModelCard.from_dict(json.loads(raw))
    md = path.with_suffix(".md")
    if not md.exists():
        raise CardError(f"{path.name} has no prose file {md.name}")
    if len(md.read_text().splitlines()) > MAX_PROSE_LINES:
        raise CardError(f"{md.name} is longer than one page ({MAX_PROSE_LINES} lines)")
    return card
