"""The shared training loop (backend.core.training) on a toy regression recipe."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from backend.core import registry
from backend.core.cards import CardError, ModelCard, Target, validate_card_file
from backend.core.progress import Cancelled
from backend.core.training import Phase, Recipe, train

W_TRUE = np.array([1.5, -2.0, 0.5], np.float32)


class Toy(Recipe):
    name = "toy"
    title = "Toy regression"
    paper = "none"
    data = "y = x @ w + noise"
    config = {"hidden": 0, "n_eval": 256}
    default_steps = 60
    save_every = 10
    validate_every = 20
    keep_best = True
    log_every = 10

    def build(self, ctx):
        return torch.nn.Linear(3, 1)

    def phases(self, steps):
        return [Phase("warm", steps // 3, batch=16, lr=0.2, warmup=5),
                Phase("main", steps - steps // 3, batch=16, lr=0.2, final_lr_frac=0.1, grad_clip=1.0)]

    def batch(self, ctx):
        x = ctx.rng.normal(size=(ctx.batch_size, 3)).astype(np.float32)
        return torch.as_tensor(x), torch.as_tensor(x @ W_TRUE)

    def loss(self, model, batch, ctx):
        x, y = batch
        mse = (model(x).squeeze(1) - y).pow(2).mean()
        return mse, {"mse": float(mse.detach())}

    @torch.no_grad()
    def _mse(self, model, seed):
        x = np.random.default_rng(seed).normal(size=(self.config["n_eval"], 3)).astype(np.float32)
        return float((model(torch.as_tensor(x)).squeeze(1) - torch.as_tensor(x @ W_TRUE)).pow(2).mean())

    def validate(self, model, ctx):
        return {"score": -self._mse(model, 1)}

    def evaluate(self, model, ctx):
        mse, base = self._mse(model, 2), float(np.mean(W_TRUE ** 2))
        return {"metrics": {"mse": mse}, "baselines": {"predict_zero": base},
                "targets": [{"metric": "mse", "threshold": 0.05, "value": mse, "direction": "<="}],
                "headline": {"metric": "mse", "label": "test MSE", "value": mse, "baseline": base},
                "readout": "plain forward pass", "limitations": ["a toy"],
                "evaluation": {"weights": model.weight.detach().numpy().ravel().tolist()}}


@pytest.fixture
def tmp_dirs(tmp_path, monkeypatch):
    monkeypatch.setattr(registry, "CHECKPOINT_DIR", tmp_path / "ckpt")
    monkeypatch.setattr(registry, "RUNS_DIR", tmp_path / "runs")
    import backend.core.training as tr

    monkeypatch.setattr(tr, "CHECKPOINT_DIR", tmp_path / "ckpt")
    return tmp_path


def test_phase_schedule_warms_up_then_cosine():
    ph = Phase("p", 110, lr=1.0, warmup=10, final_lr_frac=0.1)
    assert ph.lr_at(0) == pytest.approx(0.1) and ph.lr_at(9) == pytest.approx(1.0)
    assert ph.lr_at(10) == pytest.approx(1.0)
    assert ph.lr_at(60) == pytest.approx(0.1 + 0.9 * 0.5)
    assert ph.lr_at(110) == pytest.approx(0.1)
    assert Phase("c", 10, lr=0.3, schedule="constant").lr_at(7) == 0.3


def test_train_learns_writes_card_and_payload(tmp_dirs):
    card = train(Toy(), steps=60, device="cpu", seed=0)
    assert card["metrics"]["mse"] < 0.05 < card["baselines"]["predict_zero"]
    assert card["targets"][0]["met"] is True and card["steps"] == 60
    parsed = validate_card_file_with_prose(tmp_dirs / "ckpt" / "toy.json")
    assert parsed.size_bytes == (tmp_dirs / "ckpt" / "toy.pt").stat().st_size
    payload, _ = registry.load_checkpoint("toy", directory=tmp_dirs / "ckpt")
    assert [s["step"] for s in payload["training"]["snapshots"]] == [20, 40, 60]
    assert payload["training"]["losses"][0]["step"] == 10 and "mse" in payload["training"]["losses"][0]
    np.testing.assert_allclose(payload["evaluation"]["weights"], W_TRUE, atol=0.2)


def validate_card_file_with_prose(path: Path) -> ModelCard:
    path.with_suffix(".md").write_text("# Toy\n\nA toy regression.\n")
    return validate_card_file(path)


def test_resume_after_cancel_matches_an_uninterrupted_run(tmp_dirs):
    full = train(Toy(), steps=60, device="cpu", seed=3, save=False)

    def stop_at_25(step, total, message):
        return step >= 25

    with pytest.raises(Cancelled):
        train(Toy(), steps=60, device="cpu", seed=3, progress=stop_at_25)
    state = torch.load(tmp_dirs / "runs" / "toy" / "state.pt", weights_only=False)
    assert state["step"] == 25
    resumed = train(Toy(), steps=60, device="cpu", seed=3, resume=True)
    assert resumed["metrics"]["mse"] == pytest.approx(full["metrics"]["mse"], rel=1e-5)


def test_frozen_prefixes_do_not_train(tmp_dirs):
    class Frozen(Toy):
        def phases(self, steps):
            return [Phase("frozen", steps, frozen=("weight",), lr=0.1)]

    train(Frozen(), steps=10, device="cpu", seed=0)
    payload, _ = registry.load_checkpoint("toy", directory=tmp_dirs / "ckpt")
    torch.manual_seed(0)
    initial = torch.nn.Linear(3, 1)
    assert torch.equal(payload["state_dict"]["weight"], initial.weight.detach())
    assert not torch.equal(payload["state_dict"]["bias"], initial.bias.detach())


def test_card_rejects_unknown_fields_and_oversize():
    base = dict(name="x", title="t", paper="p", data="d", config={}, command="c", device="cpu", steps=1,
                wall_time_s=0.0, metrics={"a": 1.0}, baselines={})
    ModelCard(**base).to_json()
    with pytest.raises(CardError, match="outside the ModelCard"):
        ModelCard.from_dict({**base, "why": "a diary"})
    with pytest.raises(CardError, match="at most 8192"):
        ModelCard(**{**base, "config": {"blob": "x" * 9000}}).to_json()
    with pytest.raises(CardError, match="number"):
        ModelCard(**{**base, "metrics": {"a": "high"}})
    assert Target("m", 0.5, 0.4, ">=").met is False and Target("m", 0.5, 0.4, "<=").met is True
    assert Target("m", 0.5, math.nan).met is False


def test_cli_lists_models_and_rejects_unknown(capsys):
    from backend.train import main

    with pytest.raises(SystemExit):
        main(["no-such-model"])
    assert "unknown model" in capsys.readouterr().err


TORCHRUN_SCRIPT = """
import sys
sys.path.insert(0, {root!r})
sys.path.insert(0, {here!r})
from test_training import Toy
from backend.core.training import train
card = train(Toy(), steps=30, device="cpu", seed=0)
"""


@pytest.mark.slow
def test_toy_trains_under_torchrun_with_two_gloo_processes(tmp_path):
    root = str(Path(__file__).resolve().parents[2])
    script = tmp_path / "run_toy.py"
    script.write_text(TORCHRUN_SCRIPT.format(root=root, here=str(Path(__file__).parent)))
    env = {**os.environ, "LATENTLAB_CHECKPOINTS": str(tmp_path / "ckpt"), "LATENTLAB_RUNS": str(tmp_path / "runs"),
           "OMP_NUM_THREADS": "1"}
    r = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
                        str(script)], env=env, capture_output=True, text=True, timeout=300, cwd=root)
    assert r.returncode == 0, r.stderr[-3000:]
    assert sorted(p.name for p in (tmp_path / "ckpt").iterdir()) == ["toy.json", "toy.pt"]
    card = json.loads((tmp_path / "ckpt" / "toy.json").read_text())
    assert card["metrics"]["mse"] < card["baselines"]["predict_zero"]


def test_fit_trains_in_memory_and_stops_at_the_time_budget(tmp_dirs):
    from backend.core.training import fit

    out = fit(Toy(), steps=60, device="cpu", seed=0)
    assert out.steps_done == 60 and Toy()._mse(out.model, 2) < 0.05
    assert not (tmp_dirs / "ckpt").exists() and not (tmp_dirs / "runs").exists()  # nothing written
    short = fit(Toy(), steps=60, device="cpu", seed=0, max_seconds=1e-9)
    assert short.steps_done == 1 and short.steps_planned == 60
