"""Tiny untrained DiffEnc/VDM checkpoints with real cards, written to a folder, for API and page tests that
must not depend on the shipped weights."""

from __future__ import annotations

from pathlib import Path


def make_toy_checkpoints(directory: Path, full_size: bool = False) -> Path:
    """`full_size`: the shipped architectures (untrained), for timing; else 8-channel networks."""
    import numpy as np
    import torch

    from backend.core.evaluation import make_card, write_checkpoint
    from backend.core.recipe import Context, Phase
    from backend.diffenc.metrics import evaluate_card
    from backend.diffenc.train import RECIPES

    directory = Path(directory)
    for name, cls in RECIPES.items():
        recipe = cls(n_test=16, repeats=1) if full_size else cls(ch=8, n_test=16, repeats=1)
        recipe.name = name
        ctx = Context(0, Phase("toy", 0), 0, 0, torch.device("cpu"), np.random.default_rng(0),
                      torch.Generator().manual_seed(0), 0)
        torch.manual_seed(0)
        model = recipe.build(ctx).eval()
        with torch.no_grad():
            result = evaluate_card(recipe, model)
        card = make_card(recipe, result, command="toy", device="cpu", steps=0, wall_time_s=0.0)
        payload = {**recipe.payload(model), "evaluation": result.get("evaluation", {})}
        write_checkpoint(name, payload, card, directory)
    return directory
