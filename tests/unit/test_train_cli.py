"""`python -m backend.train NAME --steps 20` for every recipe, and torchrun with two gloo processes.

Each run works in a copy of the checkpoint folder (so recipes that read another shipped model find it) and
must change exactly NAME.pt and NAME.json there, with a card that validates and a checkpoint the domain's
public loader accepts.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys

import pytest

from backend.core.cards import validate_card_file
from backend.domains import recipes
from tests.conftest import ROOT

RECIPES = recipes()

# The domain's public loader, run in a fresh process on the folder a run wrote.
LOADERS = {
    "video-bouncing": "import numpy as np; from backend.video import load_model; m = load_model('bouncing'); "
                      "known = np.arange(m.num_frames) % 4 == 0; "
                      "clip = np.zeros((m.num_frames, m.resolution, m.resolution, 3), np.uint8); "
                      "assert m.infill(clip, known, steps=2, seed=0).shape == clip.shape",
    "causal-dcrl": "from backend.causal import load_learner; model, config, card = load_learner('dcrl'); "
                   "assert card['steps'] >= 20 and config",
}


def _workspace(tmp_path):
    ckpt = tmp_path / "ckpt"
    shutil.copytree(ROOT / "assets" / "checkpoints", ckpt)
    before = {p.name: p.stat().st_mtime_ns for p in ckpt.iterdir()}
    env = {**os.environ, "LATENTLAB_CHECKPOINTS": str(ckpt), "LATENTLAB_RUNS": str(tmp_path / "runs"),
           "OMP_NUM_THREADS": "1"}
    return ckpt, before, env


def _changed(ckpt, before) -> set[str]:
    return {p.name for p in ckpt.iterdir() if before.get(p.name) != p.stat().st_mtime_ns}


def _args(name: str) -> list[str]:
    smoke = getattr(RECIPES[name], "smoke", {})
    return [name, "--steps", "20", "--device", "cpu", *[a for k, v in smoke.items() for a in ("--set", f"{k}={v!r}")]]


def _check_written(name, ckpt, before, env):
    assert _changed(ckpt, before) == {f"{name}.pt", f"{name}.json"}
    card = validate_card_file(ckpt / f"{name}.json")
    # --steps 20, or for a zoo (members trained in its evaluation, default_steps 0) its members' steps together
    assert card.steps >= (20 if RECIPES[name].default_steps else 1) and card.metrics and card.size_bytes == (ckpt / f"{name}.pt").stat().st_size
    if name in LOADERS:
        r = subprocess.run([sys.executable, "-c", LOADERS[name]], cwd=ROOT, env=env, capture_output=True, text=True,
                           timeout=300)
        assert r.returncode == 0, r.stderr[-3000:]


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(RECIPES))
def test_twenty_steps_train_and_write_one_checkpoint(name, tmp_path):
    ckpt, before, env = _workspace(tmp_path)
    r = subprocess.run([sys.executable, "-m", "backend.train", *_args(name)], cwd=ROOT, env=env, capture_output=True,
                       text=True, timeout=900)
    assert r.returncode == 0, r.stderr[-3000:]
    assert name in r.stdout  # the metrics table
    _check_written(name, ckpt, before, env)


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(LOADERS))
def test_torchrun_two_gloo_processes_write_one_checkpoint(name, tmp_path):
    if name not in RECIPES:
        pytest.fail(f"{name} has no recipe")
    ckpt, before, env = _workspace(tmp_path)
    r = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
                        "-m", "backend.train", *_args(name)], cwd=ROOT, env=env, capture_output=True, text=True,
                       timeout=900)
    assert r.returncode == 0, r.stderr[-3000:]
    assert r.stdout.count("baseline") == 1  # one metrics table: rank 0 alone prints and writes
    _check_written(name, ckpt, before, env)
