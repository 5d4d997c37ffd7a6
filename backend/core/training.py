"""The one training loop: a recipe's phases run in order, resumable, alone or under torchrun (DDP).

A domain's `train.py` is a *recipe* (a `Recipe` subclass): its config, its phases (`Phase`: steps,
batch, learning rate with warm-up + cosine, loss weights, frozen parameters, device), a `batch` draw,
a `loss`, optionally a `validate` score for periodic snapshots, and an `evaluate` that fills the model
card. `train(recipe, ...)` does the rest:

- seeding (numpy and torch generators per rank, saved with the state so a resumed run draws the same data);
- resume from `runs/NAME/state.pt` (saved every `recipe.save_every` steps and on cancel);
- one AdamW optimiser; per step the phase's learning rate (linear warm-up, then cosine to
  `final_lr_frac`); gradient clipping; an optional EMA copy used for evaluation;
- snapshots every `recipe.validate_every` steps scored by `recipe.validate`; with `recipe.keep_best`
  the best-scoring weights are the ones evaluated and shipped;
- progress with cancel (`backend.core.progress`);
- under `torchrun --nproc_per_node=N` the loss module is wrapped in DistributedDataParallel (gloo on
  CPU, nccl on CUDA), each rank draws `batch // N` examples, and rank 0 alone writes state,
  checkpoint and card.
"""

from __future__ import annotations

import copy
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from backend.core.cards import rounded
from backend.core.device import get_device
from backend.core.distributed import dist_info, init_distributed, loss_module
from backend.core.evaluation import evaluate_recipe, make_card, reevaluate, write_checkpoint
from backend.core.progress import Cancelled, as_progress
from backend.core.recipe import Context, Phase, Recipe
from backend.core.registry import CHECKPOINT_DIR, load_train_state, save_train_state
from backend.core.seed import set_seed


# -- the loop ----------------------------------------------------------------------------------------
@dataclass
class _Run:
    recipe: Recipe
    model: Any
    ema: Any
    opt: Any
    ctx: Context
    phases: list
    total: int
    losses: list = field(default_factory=list)
    snapshots: list = field(default_factory=list)
    best: dict | None = None
    recent: list = field(default_factory=list)
    wall_before: float = 0.0
    started: float = field(default_factory=time.time)

    def wall(self) -> float:
        return self.wall_before + time.time() - self.started

    def state(self, step: int, steps: int) -> dict:
        import torch

        return {"model": self.model.state_dict(), "ema": self.ema.state_dict() if self.ema is not None else None,
                "opt": self.opt.state_dict(), "rng": self.ctx.rng.bit_generator.state,
                "generator": self.ctx.generator.get_state(), "torch_rng": torch.get_rng_state(), "step": step,
                "steps": steps, "seed": self.ctx.seed, "config": self.recipe.config, "losses": self.losses,
                "snapshots": self.snapshots, "best": self.best, "wall_time_s": self.wall(),
                "extra": self.recipe.extra_state()}

    def restore(self, st: dict) -> int:
        import torch

        self.model.load_state_dict(st["model"])
        if self.ema is not None and st.get("ema") is not None:
            self.ema.load_state_dict(st["ema"])
        self.opt.load_state_dict(st["opt"])
        self.ctx.rng.bit_generator.state = st["rng"]
        self.ctx.generator.set_state(st["generator"])
        torch.set_rng_state(st["torch_rng"])
        self.losses, self.snapshots, self.best = st["losses"], st["snapshots"], st["best"]
        self.wall_before = st.get("wall_time_s", 0.0)
        self.recipe.load_extra_state(st.get("extra") or {})
        return int(st["step"])


def _phase_at(phases: list, step: int) -> tuple[int, int]:
    """(phase index, step within it) of a global step."""
    start = 0
    for i, ph in enumerate(phases):
        if step < start + ph.steps:
            return i, step - start
        start += ph.steps
    return len(phases) - 1, phases[-1].steps


def _enter_phase(run: _Run, index: int, distributed: bool):
    """Freeze what the phase freezes, move to its device, and (re)wrap in DDP."""
    import torch

    ph = run.phases[index]
    run.ctx.phase, run.ctx.phase_index = ph, index
    dev = get_device(ph.device) if ph.device else run.ctx.device
    run.model.to(dev)
    if run.ema is not None:
        run.ema.to(dev)
    run.ctx.device = dev
    for n, p in run.model.named_parameters():
        p.requires_grad_(not any(n.startswith(f) for f in ph.frozen))
    new = run.recipe.on_phase_start(run.model, run.ctx)
    if new is not None:
        run.model = new.to(dev)
        run.ema = copy.deepcopy(run.model).eval().requires_grad_(False) if run.ema is not None else None
    if (new is not None or ph.reset_optimizer) and run.ctx.phase_step == 0:
        run.opt = torch.optim.AdamW(run.model.parameters(), lr=ph.lr, weight_decay=run.recipe.weight_decay)
    module = loss_module(run.model, run.recipe)
    if distributed:
        ids = [dev.index] if dev.type == "cuda" else None
        module = torch.nn.parallel.DistributedDataParallel(module, device_ids=ids,
                                                           find_unused_parameters=run.recipe.find_unused_parameters)
    return module


def _step(run: _Run, module, step: int) -> dict:
    import torch

    ctx, ph = run.ctx, run.ctx.phase
    ctx.step = step
    for g in run.opt.param_groups:
        g["lr"] = ph.lr_at(ctx.phase_step)
    out = module(run.recipe.batch(ctx), ctx)
    loss, logs = out if isinstance(out, tuple) else (out, {})
    run.opt.zero_grad(set_to_none=True)
    loss.backward()
    if ph.grad_clip:
        torch.nn.utils.clip_grad_norm_([p for p in run.model.parameters() if p.requires_grad], ph.grad_clip)
    run.opt.step()
    if run.ema is not None:
        decay = min(run.recipe.ema, (1 + step) / (10 + step))
        with torch.no_grad():
            for pe, pn in zip(run.ema.parameters(), run.model.parameters(), strict=True):
                pe.lerp_(pn, 1 - decay)
    return {"loss": float(loss.detach()), **{k: float(v) for k, v in logs.items()}}


def _snapshot(run: _Run, step: int) -> None:
    import torch

    model = run.ema if run.ema is not None else run.model
    model.eval()
    with torch.no_grad():
        scores = run.recipe.validate(model, run.ctx)
    model.train()
    if not scores:
        return
    run.snapshots.append({"step": step, **rounded(scores)})
    if run.recipe.keep_best and (run.best is None or scores["score"] > run.best["score"]):
        run.best = {"step": step, "score": float(scores["score"]),
                    "weights": copy.deepcopy({k: v.cpu() for k, v in model.state_dict().items()})}


def _setup(recipe: Recipe, steps: int, device, seed: int, rank: int, world: int, at_step: int = 0) -> _Run:
    """The run's model, EMA, optimiser and context; `at_step` > 0 builds the architecture in force there."""
    import torch

    set_seed(seed)  # the same initial weights on every rank
    phases = recipe.phases(steps)
    index, phase_step = _phase_at(phases, at_step)
    dev = get_device(phases[index].device or device)
    gen = torch.Generator().manual_seed(seed * 1000 + rank)
    ctx = Context(at_step, phases[index], index, phase_step, dev, np.random.default_rng([seed, rank]), gen, seed,
                  rank, world)
    model = recipe.build(ctx).to(dev)
    torch.manual_seed(seed * 1000 + rank)  # per-rank draws from here on
    ema = copy.deepcopy(model).eval().requires_grad_(False) if recipe.ema else None
    opt = torch.optim.AdamW(model.parameters(), lr=phases[0].lr, weight_decay=recipe.weight_decay)
    return _Run(recipe, model, ema, opt, ctx, phases, sum(p.steps for p in phases))


def _prepare(recipe: Recipe, steps: int, device, seed: int, resume: bool):
    rank, world = dist_info()
    st = load_train_state(recipe.name, map_location="cpu") if resume else None
    if st is not None and not (st.get("seed") == seed and st.get("config") == recipe.config and st["step"] <= steps):
        st = None  # another run's state: start afresh
    run = _setup(recipe, steps, device, seed, rank, world, at_step=st["step"] if st else 0)
    distributed = init_distributed(run.ctx.device)
    start = run.restore(st) if st else 0
    return run, start, distributed


def _loop(run: _Run, start: int, distributed: bool, progress, save: bool, steps: int,
          deadline: float | None = None) -> int:
    """Train from `start`; returns the step reached (before the end only when `deadline` passed)."""
    recipe, rank = run.recipe, run.ctx.rank
    run.model.train()
    module, current, done = None, -1, start
    try:
        for step in range(start, run.total):
            index, run.ctx.phase_step = _phase_at(run.phases, step)
            if index != current:
                module, current = _enter_phase(run, index, distributed), index
            logs = _step(run, module, step)
            _log(run, step, logs)
            done = step + 1
            if recipe.validate_every and done % recipe.validate_every == 0 and rank == 0:
                _snapshot(run, done)
            if save and rank == 0 and done % recipe.save_every == 0:
                save_train_state(recipe.name, run.state(done, steps))
            progress.update(done, run.total, f"{run.ctx.phase.name} loss {logs['loss']:.4f}")
            if deadline is not None and time.time() > deadline:
                break
    except Cancelled:
        if save and rank == 0:
            save_train_state(recipe.name, run.state(done, steps))
        raise
    if save and rank == 0 and done > start:
        save_train_state(recipe.name, run.state(done, steps))
    return done


def train(recipe: Recipe, steps: int | None = None, device=None, seed: int = 0, resume: bool = False,
          progress=None, save: bool = True) -> dict:
    """Run the recipe's phases, evaluate, and (rank 0, `save`) write NAME.pt + NAME.json. Returns the card."""
    steps = int(steps or recipe.default_steps)
    run, start, distributed = _prepare(recipe, steps, device, seed, resume)
    _loop(run, start, distributed, as_progress(progress if run.ctx.rank == 0 else None), save, steps)
    card = _finish(run, steps, seed, save) if run.ctx.rank == 0 else {}
    if distributed:
        import torch.distributed as dist

        dist.barrier()
        dist.destroy_process_group()
    return card


@dataclass
class Fitted:
    """What `fit` returns: the trained module (EMA / best snapshot when the recipe keeps them) and its log."""

    model: Any
    steps_done: int
    steps_planned: int
    losses: list
    snapshots: list
    wall_time_s: float


def fit(recipe: Recipe, steps: int | None = None, device=None, seed: int = 0, progress=None,
        max_seconds: float | None = None) -> Fitted:
    """Train in memory (no files, no evaluation) and return the model: for live training on a page.
    `max_seconds` ends training early (not an error); a cancel from `progress` raises `Cancelled`."""
    steps = int(steps or recipe.default_steps)
    run, start, _ = _prepare(recipe, steps, device, seed, resume=False)
    deadline = time.time() + max_seconds if max_seconds else None
    done = _loop(run, start, False, as_progress(progress), save=False, steps=steps, deadline=deadline)
    run.total = done
    model = _final_model(run)
    return Fitted(model, done, steps, run.losses, run.snapshots, run.wall())


def _log(run: _Run, step: int, logs: dict) -> None:
    recent = run.recent
    recent.append(logs)
    if (step + 1) % run.recipe.log_every == 0 or step + 1 == run.total:
        keys = recent[0].keys()
        run.losses.append({"step": step + 1, **{k: round(float(np.mean([r[k] for r in recent])), 6) for k in keys}})
        recent.clear()


def _final_model(run: _Run):
    model = run.ema if run.ema is not None else run.model
    if run.recipe.validate_every and (not run.snapshots or run.snapshots[-1]["step"] != run.total):
        _snapshot(run, run.total)
    if run.best is not None:
        model.load_state_dict(run.best["weights"])
    return model.eval()


def _finish(run: _Run, steps: int, seed: int, save: bool) -> dict:
    model = _final_model(run)
    result = evaluate_recipe(run.recipe, model, run.ctx)
    training = {"losses": run.losses, "snapshots": run.snapshots,
                "selected_step": run.best["step"] if run.best else run.total}
    card = make_card(run.recipe, result, command=run.recipe.command(steps, seed), device=str(run.ctx.device),
                     steps=run.total, wall_time_s=run.wall())
    if save:
        payload = {**run.recipe.payload(model), "evaluation": result.get("evaluation", {}), "training": training}
        write_checkpoint(run.recipe.name, payload, card)
    return card.to_dict()


__all__ = ["CHECKPOINT_DIR", "Context", "Fitted", "Phase", "Recipe", "dist_info", "fit", "reevaluate", "train"]
