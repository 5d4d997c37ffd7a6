"""AppTest of the Robustness page: the default scatter with its fit, another shift, training one member."""

from __future__ import annotations

import json
import time

from tests.conftest import run_page

PAGE = "pages/robustness.py"


def _plotly(at) -> list[dict]:
    return [json.loads(c.proto.spec) for c in at.get("plotly_chart")]


def test_default_view_draws_the_scatter_and_fit():
    t = time.time()
    at = run_page(PAGE)
    assert not at.exception, [e.value for e in at.exception]
    assert not at.error, [e.value for e in at.error]
    assert time.time() - t < 30
    assert at.title[0].value.startswith("Robustness")
    scatter = _plotly(at)[0]
    names = [tr.get("name") for tr in scatter["data"]]
    assert "probit fit" in names and "y = x" in names
    metrics = {m.label: m.value for m in at.metric}
    assert int(metrics["members in the fit"]) >= 100
    assert 0 <= float(metrics["R² (probit)"]) <= 1
    labels = {c for df in at.dataframe for c in df.value.columns}
    assert "kendall_tau" in labels and "d_residual" in labels


def test_synthetic_shift_from_the_url_and_train_one_member():
    at = run_page(PAGE, query={"ood": "rotation/3", "color": "aug"})
    assert not at.exception, [e.value for e in at.exception]
    assert at.selectbox(key="robustness.ood").value == "rotation/3"
    before = len(_plotly(at)[0]["data"])
    at.selectbox(key="robustness.t_arch").set_value("logistic")
    at.selectbox(key="robustness.t_aug").set_value("none")
    at.selectbox(key="robustness.t_shots").set_value(10)
    at.slider(key="robustness.t_epochs").set_value(1)
    t = time.time()
    at.button(key="robustness.t_go").click()
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    assert not at.error, [e.value for e in at.error]
    names = [tr.get("name") for tr in _plotly(at)[0]["data"]]
    assert "trained here" in names
    assert len(_plotly(at)[0]["data"]) > before
    assert time.time() - t < 15  # "train one more model" lands on the scatter within 15 s
    assert any("Added mnist-logistic-none-e1" in s.value for s in at.success)
