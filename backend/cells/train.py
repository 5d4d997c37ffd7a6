"""CFGen training recipes on the shared loop (`backend.core.training`).

Three phases train one `CFGenModule` (`stages.py`): the count autoencoder (stage 1; the flow frozen), the latent
flow (stage 2; the autoencoder frozen, its latents encoded once when the phase starts), and the per-cell-type
inverse dispersions with the decoder fixed (CFGen's `covariate_specific_theta`). `RECIPES["cells-pbmc68k"]`
trains the shipped model on the training split of pbmc68k; its evaluation first chooses the cell-type guidance
weight on a validation split of the training cells (a model trained on the rest), then measures the shipped
model against the per-gene NB baseline on held-out cells. `fit_model` (behind `backend.cells.fit`) trains on an
upload within a time budget: the phases are sized from a short timed run of the same recipe.
"""

from __future__ import annotations

import contextlib
import os
import time

import numpy as np
import torch

from backend.cells.flow import DEFAULT_STEPS
from backend.cells.stages import (
    CellPool,
    CFGenModule,
    ae_loss,
    decoder_means,
    dispersion_bounds,
    dispersion_loss,
    flow_batch,
    flow_loss,
)
from backend.core.progress import as_progress
from backend.core.training import Phase, Recipe
from backend.core.training import fit as fit_recipe

MODEL_CONFIG = ("ae_hidden", "latent", "flow_hidden", "flow_emb", "flow_blocks")
CONFIG = {
    "ae_hidden": [256, 128], "latent": 10,            # narrower than CFGen's [512, 256] -> 50 (see the .md)
    "ae_lr": 1e-3, "ae_wd": 1e-5, "ae_batch": 256,    # CFGen trainer defaults, gradient clip 1
    "theta_lr": 3e-2,                                 # the per-gene log theta moves 30x faster (stages.Scaled)
    "flow_hidden": 64, "flow_emb": 32, "flow_blocks": 3,
    "flow_lr": 1e-3, "flow_wd": 1e-6, "flow_batch": 256, "flow_per_ae": 5,
    "p_cond": 0.8, "sigma": 1e-4,
    "type_theta": True,      # per-cell-type inverse dispersion, fit after stage 1 (covariate_specific_theta)
    "theta_steps": 300, "theta_lr_type": 0.05, "theta_cells": 1024,
    "balanced_cond": True,   # attribute-conditioned rows drawn class-balanced (stages.flow_batch)
}


class CFGenRecipe(Recipe):
    """The three phases on a pool of training cells; subclasses say which cells (`prepare`) and evaluate."""

    title = "CFGen: count autoencoder + latent conditional flow matching"
    paper = "Palma et al., Multi-Modal and Multi-Attribute Generation of Single Cells with CFGen, ICLR 2025"
    config = CONFIG
    default_steps = 600
    save_every = 250
    log_every = 50
    evaluate_no_grad = False  # the shipped evaluation trains a validation model

    def __init__(self, **overrides):
        super().__init__(**overrides)
        self.weight_decay = self.config["ae_wd"]
        self.pool = None
        self.ae_steps = None
        self.dispersion = None

    # -- data ------------------------------------------------------------------------------------
    def prepare(self) -> None:
        """Set self.cells (AnnData of training counts), self.keys, self.categories; called once."""
        raise NotImplementedError

    def _ready(self) -> None:
        if self.pool is None:
            self.prepare()
            codes = np.stack([self.cells.obs[k].astype(str).map(
                {c: i for i, c in enumerate(self.categories[k])}).to_numpy() for k in self.keys], 1) \
                if self.keys else np.zeros((self.cells.n_obs, 0))
            self.pool = CellPool(self.cells.X, codes.astype(np.int64), [len(self.categories[k]) for k in self.keys])

    @property
    def n_types(self) -> int:
        c = self.config
        return len(self.categories[self.keys[0]]) if self.keys and c["type_theta"] and c["theta_steps"] else 0

    # -- the recipe ------------------------------------------------------------------------------
    def build(self, ctx):
        self._ready()
        return CFGenModule(self.cells.n_vars, self.pool.n_categories, self.config, self.n_types)

    def phases(self, steps: int) -> list[Phase]:
        self._ready()
        c = self.config
        self.ae_steps = int(steps)
        out = [Phase("autoencoder", self.ae_steps, batch=c["ae_batch"], lr=c["ae_lr"], schedule="constant",
                     frozen=("flow.", "log_theta_type"), grad_clip=1.0),
               Phase("flow", self.flow_steps(self.ae_steps), batch=c["flow_batch"], lr=c["flow_lr"],
                     schedule="constant", frozen=("ae.", "log_theta_type"), grad_clip=1.0, reset_optimizer=True,
                     options={"weight_decay": c["flow_wd"]})]
        if self.n_types:
            out.append(Phase("dispersion", c["theta_steps"], batch=c["theta_cells"], lr=c["theta_lr_type"],
                             schedule="constant", frozen=("ae.", "flow."), reset_optimizer=True,
                             options={"weight_decay": 0.0}))
        return out

    def flow_steps(self, ae_steps: int) -> int:
        return int(self.config.get("flow_steps") or self.config["flow_per_ae"] * ae_steps)

    def on_phase_start(self, model, ctx):
        self.weight_decay = ctx.phase.options.get("weight_decay", self.config["ae_wd"])
        if ctx.phase.name == "flow":
            self.pool.encode(model, ctx.device)
        elif ctx.phase.name == "dispersion":
            n = len(self.pool)
            rows = np.sort(ctx.rng.choice(n, ctx.phase.batch, replace=False)) if n > ctx.phase.batch else np.arange(n)
            counts = self.pool.x[rows].to(ctx.device)
            if ctx.phase_step == 0:  # start every type from the shared theta; a type without cells keeps it
                with torch.no_grad():
                    model.log_theta_type.copy_(model.ae.log_theta.detach().expand_as(model.log_theta_type))
            self.dispersion = (counts, decoder_means(model, counts), self.pool.codes[rows, 0].to(ctx.device),
                               dispersion_bounds(model))
        return None

    def batch(self, ctx):
        name = ctx.phase.name
        if name == "autoencoder":
            return self.pool.x[self.pool.rows(ctx.batch_size, ctx.generator)].to(ctx.device)
        if name == "flow":
            b = flow_batch(self.pool, ctx.batch_size, ctx.generator, self.config["p_cond"],
                           self.config["balanced_cond"])
            return tuple(x.to(ctx.device) for x in b)
        return self.dispersion

    def loss(self, model, batch, ctx):
        name = ctx.phase.name
        if name == "autoencoder":
            return ae_loss(model, batch)
        if name == "flow":
            return flow_loss(model, batch, self.config["sigma"])
        return dispersion_loss(model, *batch)

    # -- what ships --------------------------------------------------------------------------------
    def payload(self, model) -> dict:
        self._ready()
        if model.log_theta_type is not None:
            with torch.no_grad():
                model.log_theta_type.clamp_(*dispersion_bounds(model))
        lib = np.asarray(self.cells.X.sum(1)).ravel().astype(np.float32)
        return {**model.to_payload(), "name": self.name or "uploaded",
                "config": {k: self.config[k] for k in MODEL_CONFIG}, "var_names": list(self.cells.var_names),
                "condition_keys": list(self.keys), "categories": {k: list(v) for k, v in self.categories.items()},
                "lib_sizes": torch.as_tensor(lib), "lib_codes": self.pool.codes.clone()}

    def cells_model(self, model, device=None):
        from backend.cells.api import CellsModel

        return CellsModel(CFGenRecipe.payload(self, model), device=device)

    def load_shipped(self, device):
        from backend.core.registry import load_checkpoint

        payload, _ = load_checkpoint(self.name, map_location="cpu")
        return CFGenModule.from_payload(payload, self.config).to(device)


# ---------------------------------------------------------------------------------------------------
# The shipped checkpoint

SPLIT_SEED, TEST_FRAC = 0, 0.25
VAL_FRAC, VAL_SEED = 0.2, 1  # validation split carved from the TRAINING cells (the test cells are never used)


@contextlib.contextmanager
def alone():
    """A nested training run (the validation model) as a single process, also when the outer run is under
    torchrun: evaluation runs on rank 0 only, so the nested run must not wait for the other ranks."""
    saved = {k: os.environ.get(k) for k in ("RANK", "WORLD_SIZE")}
    os.environ.update(RANK="0", WORLD_SIZE="1")
    try:
        yield
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


class CellsPbmc68k(CFGenRecipe):
    name = "cells-pbmc68k"
    data = ("scanpy pbmc68k_reduced: 700 cells x 765 genes, integer counts recovered from .raw.X; stratified split "
            "by cell type (seed 0): 524 training / 176 held-out cells")
    config = {**CONFIG, "condition_keys": ["cell_type", "phase"], "map": "umap",
              "guidance_grid": [1.0, 1.5, 2.0, 2.5],  # CFGen: weight 1 in its configs, 1.5 in the PBMC3k notebook
              "steps_grid": [10, 30], "eval_seeds": 10, "val_seeds": 10, "aug_seeds": 3}
    smoke = {"ae_batch": 64, "flow_batch": 64, "flow_per_ae": 2, "theta_steps": 10, "map": "pca",
             "guidance_grid": [1.0, 2.0], "steps_grid": [4], "eval_seeds": 2, "val_seeds": 2, "aug_seeds": 1}

    def prepare(self) -> None:
        from backend.cells.data import load_dataset, split_indices

        self.real = load_dataset("pbmc68k")
        self.keys = list(self.config["condition_keys"])
        self.categories = {k: [str(c) for c in self.real.obs[k].cat.categories] for k in self.keys}
        self.split = split_indices(self.real.obs["cell_type"].to_numpy(), TEST_FRAC, seed=SPLIT_SEED)
        self.cells = self.real[self.split[0]].copy()

    def payload(self, model) -> dict:
        from backend.cells.embedding import fit_reference

        out = super().payload(model)
        tr, te = self.split
        out["split"] = {"train": torch.as_tensor(tr), "test": torch.as_tensor(te), "seed": SPLIT_SEED}
        out["reference"] = fit_reference(self.real, seed=0, method=self.config["map"])
        return out

    def select_on_validation(self, ctx) -> dict:
        """Train the same recipe on 80% of the training cells and choose guidance and steps on the other 20%."""
        from backend.cells.heldout import select_guidance

        validation = CellsValidation(**self.config)
        with alone():
            fitted = fit_recipe(validation, steps=self.ae_steps or self.default_steps, device=str(ctx.device),
                                seed=ctx.seed)
        model = validation.cells_model(fitted.model, ctx.device)
        c = self.config
        sel = select_guidance(model, validation.cells, validation.held_back, c["guidance_grid"], c["steps_grid"],
                              DEFAULT_STEPS, seeds=tuple(range(c["val_seeds"])))
        return {**sel, "val_seed": VAL_SEED, "val_frac": VAL_FRAC}

    def evaluate(self, model, ctx) -> dict:
        from backend.cells.heldout import heldout_report, plain

        self._ready()
        c = self.config
        selection = self.select_on_validation(ctx)
        g = selection["guidance"]
        cells = self.cells_model(model, ctx.device)
        test = self.real[self.split[1]].copy()
        seeds = tuple(range(c["eval_seeds"]))
        with torch.no_grad():
            rep = heldout_report(cells, self.cells, test, g, seeds=seeds, aug_seeds=tuple(range(c["aug_seeds"])))
        m, b = rep["metrics"], rep["baselines"]
        targets = [{"metric": k, "threshold": b["nb_" + k], "value": m[k], "direction": "<="}
                   for k in ("w2_pooled", "mmd2_u_large")]
        n_small = sum(r["too_small"] for r in rep["detail"]["per_type"])
        return {
            "metrics": m, "baselines": b, "targets": targets,
            "headline": {"metric": "w2_pooled", "label": "Held-out W2, all cells pooled (CFGen)",
                         "value": m["w2_pooled"], "baseline": b["nb_w2_pooled"], "baseline_label": "per-gene NB"},
            "readout": (f"midpoint ODE, {DEFAULT_STEPS} steps; cell-type guidance {g} (chosen on validation: "
                        f"{VAL_FRAC:.0%} of the training cells, split seed {VAL_SEED}, held back from a model trained "
                        f"on the rest); size factors copied from training cells of the same type; test set: the "
                        f"{len(test)} held-out cells of split seed {SPLIT_SEED}, one generated cell per held-out cell, "
                        f"{len(seeds)} generation seeds (0-{len(seeds) - 1}), 95% t-intervals over them; 30 PCs fit "
                        f"on the held-out cells; per-type means over the {len(rep['detail']['types_ge20'])} types "
                        f"with >= 20 held-out cells"),
            "limitations": [
                f"Only {len(rep['detail']['types_ge20'])} of 10 types have >= 20 held-out cells; the other "
                f"{n_small} are listed per type but too small to rank.",
                f"Intervals cover generation draws only; the {len(test)} held-out cells are one fixed sample.",
                "rbf_mmd and w2 follow CFGen's protocol (biased MMD, every type): mostly a sample-size constant.",
                "Generated cells do not help a classifier on the rarest types (rare_f1_augmented).",
                "765 genes of a reduced dataset; not CFGen's full PBMC68k setting.",
            ],
            "evaluation": plain({"validation": selection, **rep["detail"], "reference_numbers": REFERENCE_NUMBERS}),
        }


REFERENCE_NUMBERS = ("CFGen authors' intermediate repo results (theislab/CFGen@db92d15), full PBMC68k, not this "
                     "subset: RBF-MMD 0.412, W2 15.77 (scVI 0.446 / 16.11)")


class CellsValidation(CellsPbmc68k):
    """The shipped recipe on 80% of its training cells; `held_back` (the other 20%) chooses guidance."""

    name = "cells-pbmc68k-validation"

    def prepare(self) -> None:
        from backend.cells.data import split_indices

        super().prepare()
        train_cells = self.cells
        fit_rows, val_rows = split_indices(train_cells.obs["cell_type"].to_numpy(), VAL_FRAC, seed=VAL_SEED)
        self.cells, self.held_back = train_cells[fit_rows].copy(), train_cells[val_rows].copy()


# ---------------------------------------------------------------------------------------------------
# Uploads: time-budgeted


class UploadedCells(CFGenRecipe):
    """The three phases on an uploaded AnnData's training cells (`cells`: prepared counts, categorical obs)."""

    name = "uploaded"

    def __init__(self, cells=None, keys=(), **overrides):
        super().__init__(**overrides)
        self.cells, self.keys = cells, list(keys)
        self.categories = {k: [str(c) for c in cells.obs[k].cat.categories] for k in self.keys}

    def prepare(self) -> None:
        pass


class StepClock:
    """Progress sink that times the steps of each phase (phase name = the message's first word)."""

    def __init__(self, progress):
        self.progress, self.times = progress, {}

    def __call__(self, step, total, message):
        self.times.setdefault(message.split(" ")[0], []).append(time.perf_counter())
        self.progress.update(0, 1000, "timing the training steps")

    def seconds(self, phase: str) -> float:
        t = np.diff(self.times.get(phase, []))
        return float(np.median(t)) if len(t) else 0.05


class Budget:
    """Progress of the sized run on the caller's 0..1000 scale (from `start` to 990)."""

    def __init__(self, progress, start: int):
        self.progress, self.start = progress, start

    def __call__(self, step, total, message):
        if step % 20 == 0 or step == total:
            self.progress.update(self.start + int((990 - self.start) * step / max(total, 1)), 1000, message)


MIN_HELDOUT = 10  # held-out cells needed for metrics; with fewer, an upload trains on all cells (no metrics)


def fit_model(adata, condition_keys=(), max_seconds: float = 120, seed: int = 0, progress=None,
              test_frac: float = 0.1, ae_fraction: float = 0.6, max_ae_steps: int = 3000,
              max_flow_steps: int = 12000, device=None, config: dict | None = None):
    """Time-budgeted CFGen training on an AnnData of counts; returns a `CellsModel`.

    A stratified `test_frac` of the cells (by the first attribute) is held out and recorded in `model.split`;
    when that leaves fewer than MIN_HELDOUT cells, all cells train and the model has no held-out metrics.
    A timed run of a few steps per phase sizes the phases: ~`ae_fraction` of the budget for the autoencoder,
    ~33% for the flow, ~4% for the per-type dispersions.
    """
    from backend.cells.data import prepare_counts, split_indices

    if max_seconds is None or not np.isfinite(max_seconds) or max_seconds <= 0:
        raise ValueError("The time budget must be a positive number of seconds.")
    keys = list(condition_keys or [])
    t_start = time.time()
    p = as_progress(progress)
    p.update(0, 1000, "preparing counts")
    data = prepare_counts(adata, keys)
    labels = data.obs[keys[0]].astype(str).to_numpy() if keys else np.zeros(data.n_obs, dtype=str)
    tr, te = split_indices(labels, test_frac, seed=seed) if test_frac > 0 else (np.arange(data.n_obs), np.arange(0))
    if len(te) < MIN_HELDOUT:  # too few to measure anything: train on every cell, and say metrics are unavailable
        tr, te = np.arange(data.n_obs), np.arange(0)
    cells = data[tr].copy()
    cfg = {**(config or {}), "theta_cells": 512}
    clock = StepClock(p)
    fit_recipe(UploadedCells(cells, keys, **{**cfg, "flow_steps": 6, "theta_steps": 4}), steps=6, device=device,
               seed=seed, progress=clock)
    left = max_seconds - (time.time() - t_start)
    ae_steps = int(np.clip((max_seconds * ae_fraction - (time.time() - t_start)) / clock.seconds("autoencoder"),
                           10, max_ae_steps))
    flow_steps = int(np.clip(max(left, 0) * 0.33 / clock.seconds("flow"), 20, max_flow_steps))
    theta_steps = int(np.clip(max(left, 0) * 0.04 / clock.seconds("dispersion"), 5, 300))
    recipe = UploadedCells(cells, keys, **{**cfg, "flow_steps": flow_steps, "theta_steps": theta_steps})
    fitted = fit_recipe(recipe, steps=ae_steps, device=device, seed=seed, progress=Budget(p, 50),
                        max_seconds=max(1.0, max_seconds * 1.1 - (time.time() - t_start)))  # a safety net
    model = recipe.cells_model(fitted.model)
    model.split = {"train_obs": list(data.obs_names[tr]), "test_obs": list(data.obs_names[te])}
    model.train_info = {"ae_steps": ae_steps, "flow_steps": flow_steps, "dispersion_steps": theta_steps,
                        "wall_seconds": time.time() - t_start, "n_train": len(tr), "n_test": len(te),
                        "n_genes": data.n_vars, "steps_done": fitted.steps_done}
    model.test_data = data[te].copy() if len(te) else None
    model.real_data = data
    p.update(1000, 1000, "done")
    return model


RECIPES = {CellsPbmc68k.name: CellsPbmc68k}
