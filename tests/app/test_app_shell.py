"""AppTest runs of the shell: Home cards, sidebar device, Models page with good and bad checkpoints."""

from __future__ import annotations

import json

import torch

from backend.core import ModelCard, registry
from backend.core.training import write_checkpoint
from tests.conftest import run_page
from ui.registry import available_pages


def test_home_renders_cards_and_sidebar():
    at = run_page()
    assert not at.exception
    assert at.title[0].value == "Latent Lab"
    sidebar = " ".join(c.value for c in at.sidebar.caption)
    assert "Latent Lab v" in sidebar and ("CPU" in sidebar or "CUDA" in sidebar)
    subheaders = [s.value for s in at.subheader]
    for p in available_pages():
        assert p.title in subheaders, f"no card for {p.title}"


def _write(tmp_path, name, metrics):
    card = ModelCard(name=name, title=f"{name} title", paper="-", data="toy", config={"width": 8},
                     command=f"python -m backend.train {name}", device="cpu", steps=10, wall_time_s=60,
                     metrics=metrics, baselines={"chance": 0.1},
                     targets=[{"metric": "acc", "threshold": 0.9, "value": metrics["acc"]}],
                     headline={"metric": "acc", "label": "accuracy", "value": metrics["acc"]},
                     readout="argmax", limitations=["a toy"])
    write_checkpoint(name, {"w": torch.ones(3)}, card, directory=tmp_path)
    (tmp_path / f"{name}.md").write_text(f"# {name}\n\nProse about {name}.\n")


def test_models_page_lists_cards_and_flags_problems(tmp_path, monkeypatch):
    _write(tmp_path, "good-model", {"acc": 0.93})
    _write(tmp_path, "broken-model", {"acc": 0.5})
    (tmp_path / "broken-model.pt").write_bytes(b"garbage")
    (tmp_path / "orphan.json").write_text(json.dumps({"command": "x"}))
    monkeypatch.setattr(registry, "CHECKPOINT_DIR", tmp_path)
    at = run_page("pages/models.py")
    assert not at.exception
    table = at.dataframe[0].value
    assert set(table["model"]) == {"good-model", "broken-model", "orphan"}
    errors = " ".join(e.value for e in at.error)
    assert "broken-model" in errors and "orphan" in errors and "missing" in errors
    assert "good-model" not in errors
    # choose a model card: shows its command, and the choice lands in the URL
    at.selectbox(key="models.model").set_value("good-model").run()
    assert any("python -m backend.train good-model" in m.value for m in at.markdown)
    assert any("Prose about good-model" in m.value for m in at.markdown)
    assert at.dataframe[-1].value["met"].tolist() == ["yes"]
    assert at.query_params["model"] == ["good-model"] or at.query_params["model"] == "good-model"


def test_models_page_restores_choice_from_url(tmp_path, monkeypatch):
    _write(tmp_path, "a-model", {"acc": 0.1})
    _write(tmp_path, "b-model", {"acc": 0.2})
    monkeypatch.setattr(registry, "CHECKPOINT_DIR", tmp_path)
    from streamlit.testing.v1 import AppTest

    from tests.conftest import ROOT

    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=120)
    at.query_params["model"] = "b-model"
    at.run()
    at.switch_page("pages/models.py").run()
    assert not at.exception
    assert at.selectbox(key="models.model").value == "b-model"
