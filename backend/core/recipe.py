"""What a training recipe is: `Phase` (one stretch of training as data), `Context` (what the hooks see) and
`Recipe` (the base class a domain's `train.py` subclasses). `backend.core.training` runs recipes.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np


@dataclass
class Phase:
    """One stretch of training with its own schedule. Learning rate: linear warm-up over `warmup`
    steps to `lr`, then cosine to `lr * final_lr_frac` at the phase's end (`schedule="constant"` keeps it)."""

    name: str
    steps: int
    batch: int = 32
    lr: float = 1e-3
    warmup: int = 0
    final_lr_frac: float = 0.0
    schedule: str = "cosine"  # "cosine" | "constant"
    weights: dict = field(default_factory=dict)  # loss weights in force, read by the recipe's loss
    frozen: tuple = ()  # parameter-name prefixes that do not train in this phase
    device: str | None = None  # None: the run's device
    grad_clip: float | None = None
    reset_optimizer: bool = False  # a fresh AdamW when the phase starts (also when on_phase_start swaps the model)
    options: dict = field(default_factory=dict)  # anything else the recipe reads (data pool, teacher, ...)

    def lr_at(self, i: int) -> float:
        """Learning rate at step `i` counted from the phase's start."""
        if self.warmup and i < self.warmup:
            return self.lr * (i + 1) / self.warmup
        if self.schedule == "constant":
            return self.lr
        span = max(1, self.steps - self.warmup)
        frac = min(1.0, max(0.0, (i - self.warmup) / span))
        return self.lr * (self.final_lr_frac + (1 - self.final_lr_frac) * 0.5 * (1 + math.cos(math.pi * frac)))


@dataclass
class Context:
    """What a recipe's hooks see: where the run is, its generators, its rank."""

    step: int
    phase: Phase
    phase_index: int
    phase_step: int
    device: Any
    rng: np.random.Generator
    generator: Any  # torch.Generator on CPU
    seed: int
    rank: int = 0
    world: int = 1

    @property
    def batch_size(self) -> int:
        """This rank's share of the phase's batch."""
        return max(1, self.phase.batch // self.world)


class Recipe:
    """Base class of a domain's training recipe. Override `build`, `phases`, `batch`, `loss`, `evaluate`."""

    name: str = ""
    title: str = ""
    paper: str = ""
    data: str = ""
    config: dict = {}
    default_steps: int = 1000
    ema: float | None = None
    weight_decay: float = 0.0
    save_every: int = 200
    validate_every: int = 0  # 0: no snapshots
    keep_best: bool = False
    log_every: int = 50
    find_unused_parameters: bool = False  # DDP: set when a phase's loss leaves trainable parameters unused
    evaluate_no_grad: bool = True  # False when the evaluation itself needs gradients (attacks, a nested fit)
    smoke: dict = {}  # config overrides that make a 20-step run and its evaluation take seconds (tests)

    def __init__(self, **overrides):
        self.config = {**type(self).config, **overrides}

    # -- what a recipe provides -------------------------------------------------------------------
    def build(self, ctx: Context):
        """The torch module that trains (a ModuleDict when several networks train together)."""
        raise NotImplementedError

    def phases(self, steps: int) -> list[Phase]:
        return [Phase("main", steps)]

    def batch(self, ctx: Context):
        raise NotImplementedError

    def loss(self, model, batch, ctx: Context):
        """A scalar tensor, or (scalar, {name: float}) to log."""
        raise NotImplementedError

    def on_phase_start(self, model, ctx: Context):
        """Called when a phase starts (also when a resumed run lands inside it, with ctx.phase_step > 0).
        May return a new module (e.g. a grown architecture) that replaces the model from here on;
        `build(ctx)` must then make that same architecture for a ctx inside or after this phase."""
        return None

    def validate(self, model, ctx: Context) -> dict:
        """Validation scores of a snapshot; must hold "score" (higher is better)."""
        return {}

    def evaluate(self, model, ctx: Context) -> dict:
        """Held-out evaluation: metrics, baselines, targets, headline, readout, limitations and an
        optional "evaluation" entry (detail kept in the checkpoint payload, not the card)."""
        raise NotImplementedError

    def payload(self, model) -> dict:
        """What NAME.pt holds (plain values and tensors)."""
        return {"state_dict": model.state_dict(), "config": dict(self.config)}

    def load_shipped(self, device):
        """The shipped weights as the module `build` makes (for re-evaluation without training)."""
        from backend.core.registry import load_checkpoint

        payload, _ = load_checkpoint(self.name, map_location=device)
        model = self.build(Context(0, Phase("load", 0), 0, 0, device, np.random.default_rng(0), None, 0))
        model.load_state_dict(payload["state_dict"])
        return model.to(device)

    def extra_state(self) -> dict:
        return {}

    def load_extra_state(self, state: dict) -> None:
        pass

    def command(self, steps: int, seed: int) -> str:
        return f"python -m backend.train {self.name} --steps {steps} --seed {seed}"
