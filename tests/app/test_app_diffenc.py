"""AppTest of the DiffEnc page on tiny untrained checkpoints (DIFFENC_CHECKPOINTS): the default view (encoder
panels, comparison table, per-t and stacked-term charts, samples), URL settings, the t slider, and the message
shown when a model is missing."""

from __future__ import annotations

import json

import pytest

from backend.core.cache import clear_cache
from tests.conftest import run_page
from tests.unit.diffenc_toy import make_toy_checkpoints

PAGE = "pages/diffenc.py"


@pytest.fixture(scope="module")
def toy_dir(tmp_path_factory):
    return make_toy_checkpoints(tmp_path_factory.mktemp("diffenc"))


@pytest.fixture
def toy(toy_dir, monkeypatch):
    from backend.diffenc.api import load_model

    monkeypatch.setenv("DIFFENC_CHECKPOINTS", str(toy_dir))
    clear_cache(load_model)
    yield toy_dir
    clear_cache(load_model)


def test_default_view_url_settings_and_slider(toy):
    at = run_page(PAGE, query={"t": "0.8", "index": "3", "steps": "25"})
    assert not at.exception, [e.value for e in at.exception]
    assert not at.error, [e.value for e in at.error]
    assert at.title[0].value.startswith("DiffEnc")
    assert at.slider(key="diffenc.t").value == 0.8
    assert at.number_input(key="diffenc.index").value == 3
    assert "t = 0.80" in " ".join(m.value for m in at.markdown)
    table = at.dataframe[0].value
    assert {"VDM", "VDM (size-matched)", "DiffEnc", "per-pixel categorical (baseline)", "zlib (baseline)"} <= set(
        table["model"])
    figs = [json.loads(c.proto.spec) for c in at.get("plotly_chart")]
    assert len(figs) == 2 and figs[1]["layout"]["barmode"] == "stack"
    assert len(figs[0]["data"]) == 4  # three models + the difference
    assert len(figs[1]["data"]) == 3  # diffusion, latent, recon
    assert any("paired comparison" in i.value for i in at.info), "toy cards carry no 3-seed comparison"
    at.slider(key="diffenc.t").set_value(0.2).run()
    assert not at.exception
    assert "t = 0.20" in " ".join(m.value for m in at.markdown)
    at.button(key="diffenc.ood").click().run()
    assert not at.exception, [e.value for e in at.exception]
    ood = at.dataframe[-1].value
    assert set(ood.index) == {"MNIST test", "scikit-learn digits", "font digits"} and ood.shape[1] == 3


def test_missing_checkpoint_is_an_actionable_error(tmp_path, monkeypatch):
    from backend.diffenc.api import load_model

    monkeypatch.setenv("DIFFENC_CHECKPOINTS", str(tmp_path))
    clear_cache(load_model)
    at = run_page(PAGE)
    clear_cache(load_model)
    assert not at.exception, [e.value for e in at.exception]
    assert "python -m backend.train" in at.error[0].value
