"""From trained weights to a card: run a recipe's evaluation, build its ModelCard, write NAME.pt + NAME.json.

`reevaluate` does this for the shipped weights without training (`python -m backend.train NAME --evaluate`).
"""

from __future__ import annotations

import contextlib
from typing import TYPE_CHECKING

import numpy as np

from backend.core.cards import ModelCard
from backend.core.device import get_device
from backend.core.registry import save_checkpoint, write_text_atomic

if TYPE_CHECKING:
    from backend.core.recipe import Context, Recipe


def evaluate_recipe(recipe: Recipe, model, ctx: Context) -> dict:
    import torch

    model.eval()
    with torch.no_grad() if recipe.evaluate_no_grad else contextlib.nullcontext():
        return recipe.evaluate(model, ctx)


CARD_FIELDS = ("metrics", "baselines", "targets", "headline", "readout", "limitations")


def make_card(recipe: Recipe, result: dict, command: str, device: str, steps: int, wall_time_s: float) -> ModelCard:
    return ModelCard(name=recipe.name, title=recipe.title, paper=recipe.paper, data=recipe.data,
                     config=dict(recipe.config), command=command, device=device,
                     steps=int(result.get("steps", steps)),  # a recipe that trains inside `evaluate` counts its own
                     wall_time_s=round(float(wall_time_s), 1),
                     **{k: result[k] for k in CARD_FIELDS if k in result})


def write_checkpoint(name: str, payload: dict, card: ModelCard, directory=None) -> None:
    """NAME.pt, then NAME.json with the file's size (the card is validated before anything is written)."""
    card.to_json()
    pt = save_checkpoint(name, payload, directory)
    card.size_bytes = pt.stat().st_size
    write_text_atomic(pt.with_suffix(".json"), card.to_json())


def reevaluate(recipe: Recipe, device=None) -> dict:
    """Re-evaluate the shipped weights (no training) and rewrite NAME.pt's evaluation entry and NAME.json;
    how the weights were made (command, steps, wall time, device) is kept from the former card."""
    import torch

    from backend.core.recipe import Context, Phase
    from backend.core.registry import load_checkpoint

    dev = get_device(device)
    payload, old = load_checkpoint(recipe.name, map_location="cpu")
    model = recipe.load_shipped(dev).eval()
    ctx = Context(0, Phase("evaluate", 0), 0, 0, dev, np.random.default_rng(0), torch.Generator().manual_seed(0), 0)
    result = evaluate_recipe(recipe, model, ctx)
    card = make_card(recipe, result, command=old.get("command", recipe.command(recipe.default_steps, 0)),
                     device=str(old.get("device", dev)), steps=int(old.get("steps", 0)),
                     wall_time_s=float(old.get("wall_time_s", 0.0)))
    payload["evaluation"] = result.get("evaluation", {})
    write_checkpoint(recipe.name, payload, card)
    return card.to_dict()
