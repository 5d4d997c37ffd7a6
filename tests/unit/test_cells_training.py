"""Cells training: the recipe's smoke run on the shared loop, and time-budgeted fits on uploads."""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest

from backend.cells import fit
from tests.unit.cells_toy import model, real, toy  # noqa: F401 (fixtures)


@pytest.mark.slow
def test_fit_small_synthetic_within_budget():
    import time

    from backend.core.progress import Cancelled

    cells = toy(300, 40)
    t = time.time()
    steps = []
    m = fit(cells, condition_keys=["cell_type"], max_seconds=8, seed=0, progress=lambda s, n, msg: steps.append(s))
    took = time.time() - t
    assert took < 8 + 12, took  # the budget, plus first-call overhead (optimizer imports) on a loaded machine
    assert m.train_info["ae_steps"] > 0 and m.train_info["flow_steps"] > 0 and m.train_info["n_test"] == 30
    assert steps and steps[-1] == 1000
    gen = m.generate(20, conditions={"cell_type": "a"}, seed=0, steps=5)
    assert gen.shape == (20, 40) and np.all(gen.X.data == np.rint(gen.X.data))
    from backend.cells import load_model_bytes

    m2 = load_model_bytes(m.to_bytes())
    assert (m2.generate(5, seed=0, steps=3).X != m.generate(5, seed=0, steps=3).X).nnz == 0
    with pytest.raises(Cancelled):
        fit(cells, condition_keys=["cell_type"], max_seconds=30, progress=lambda s, n, msg: s > 0)
    with pytest.raises(ValueError, match="time budget"):
        fit(cells, max_seconds=0)


@pytest.mark.slow
def test_recipe_smoke_run_writes_a_checkpoint_the_loader_reads(tmp_path):
    """`python -m backend.train cells-pbmc68k --steps 20` with the recipe's smoke overrides, into a tmp dir."""
    from backend.cells.api import CellsModel
    from backend.cells.train import CellsPbmc68k
    from backend.core.cards import validate_card_file
    from backend.core.registry import load_checkpoint

    sets = [a for k, v in CellsPbmc68k.smoke.items() for a in ("--set", f"{k}={v!r}".replace(" ", ""))]
    env = {**os.environ, "LATENTLAB_CHECKPOINTS": str(tmp_path / "ckpt"), "LATENTLAB_RUNS": str(tmp_path / "runs")}
    out = subprocess.run([sys.executable, "-m", "backend.train", "cells-pbmc68k", "--steps", "20", "--device", "cpu",
                          *sets], capture_output=True, text=True, env=env, timeout=600)
    assert out.returncode == 0, out.stderr[-2000:]
    (tmp_path / "ckpt" / "cells-pbmc68k.md").write_text("# smoke\n")
    card = validate_card_file(tmp_path / "ckpt" / "cells-pbmc68k.json")
    assert card.steps == 20 + 40 + CellsPbmc68k.smoke["theta_steps"] and "w2_pooled" in card.metrics
    payload, _ = load_checkpoint("cells-pbmc68k", directory=tmp_path / "ckpt")
    assert {"validation", "per_type", "types_ge20"} <= set(payload["evaluation"])
    gen = CellsModel(payload).generate(10, conditions={"cell_type": "CD19+ B"}, seed=0, steps=3)
    assert gen.shape == (10, 765) and np.all(gen.X.data == np.rint(gen.X.data))
