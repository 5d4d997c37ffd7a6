"""AppTest of the Disentanglement page: default view, probe/source changes, URL settings, uploads."""

from __future__ import annotations

import json

import numpy as np

from backend.disentangle import to_csv_bytes, toy_codes
from tests.conftest import run_page

PAGE = "pages/disentangle.py"


def _plotly(at) -> list[dict]:
    return [json.loads(c.proto.spec) for c in at.get("plotly_chart")]


def _scores(at):
    """The scores table (the first dataframe with a 'representation' column)."""
    for df in at.dataframe:
        if "representation" in df.value.columns:
            return df.value
    raise AssertionError("no scores table on the page")


def test_default_view_scores_toy_codes():
    at = run_page(PAGE)
    assert not at.exception, [e.value for e in at.exception]
    assert not at.error, [e.value for e in at.error]
    assert at.title[0].value.startswith("Disentanglement")
    assert at.multiselect[0].value == ["toy:identity", "toy:rotation", "toy:missing", "toy:noise"]
    metrics = {m.label: float(m.value) for m in at.metric}
    assert set(metrics) == {"D", "C", "I", "E", "S"}
    assert metrics["D"] > 0.9 and metrics["I"] > 0.9  # the focus is the identity code
    scores = _scores(at).set_index("representation")
    assert scores.loc["Toy: rotation", "D"] < 0.7 < scores.loc["Toy: rotation", "I"]
    assert scores.loc["Toy: noise", "I"] < 0.1
    figs = _plotly(at)
    assert len(figs) == 3  # importance heatmap, loss-capacity curves, score bars
    assert figs[0]["data"][0]["type"] == "heatmap"
    assert len(figs[1]["data"]) == 2 * 4  # test losses + running minimum per factor
    assert [b.label for b in at.get("download_button")][-2:] == ["Download all scores (CSV)",
                                                                  "Download per-factor table (CSV)"]


def test_probe_and_sources_from_widgets_and_url():
    at = run_page(PAGE, query={"sources": '["toy:identity","toy:elementwise"]', "probe": "lasso", "n": "1000"})
    assert not at.exception, [e.value for e in at.exception]
    assert at.selectbox(key="disentangle.probe").value == "lasso"
    scores = _scores(at).set_index("representation")
    assert list(scores.index) == ["Toy: identity", "Toy: elementwise"]
    assert scores.loc["Toy: elementwise", "E"] < scores.loc["Toy: identity", "E"]
    assert (scores["probe"] == "lasso").all()
    # inspect the other representation
    at.selectbox(key="disentangle.focus").set_value("toy:elementwise").run()
    assert not at.exception
    assert "elementwise" in " ".join(c.value for c in at.caption)
    # drop all sources: a hint, no crash
    at.multiselect(key="disentangle.sources").set_value([]).run()
    assert not at.exception and at.info


def test_upload_csv_joins_the_comparison_and_bad_file_is_an_error():
    at = run_page(PAGE, query={"sources": '["toy:identity"]'})
    c, z, names = toy_codes("rotation", n=300, k=3, seed=4)
    at.file_uploader[0].set_value(("mine.csv", to_csv_bytes(c, z, names), "text/csv")).run()
    assert not at.exception, [e.value for e in at.exception]
    assert "upload" in at.multiselect(key="disentangle.sources").value
    scores = _scores(at).set_index("representation")
    assert "Uploaded: mine.csv" in scores.index
    assert scores.loc["Uploaded: mine.csv", "I"] > 0.8 and scores.loc["Uploaded: mine.csv", "D"] < 0.8
    # a file without factor columns: a clear error, and the page keeps working
    at.file_uploader[0].set_value(("bad.csv", b"a,b\n" + b"1,2\n" * 30, "text/csv")).run()
    assert not at.exception
    assert any("No factor columns" in e.value for e in at.error)
    # NaN in an uploaded file: the metric's message, not a traceback
    bad = np.c_[c, z]
    bad[5, 0] = np.nan
    text = "c1,c2,c3,z1,z2,z3\n" + "\n".join(",".join(f"{v:g}" for v in row) for row in bad)
    at.file_uploader[0].set_value(("nan.csv", text.encode(), "text/csv")).run()
    assert not at.exception
    assert any("NaN" in e.value for e in at.error)


def test_causal_learners_as_sources():
    at = run_page(PAGE, query={"sources": '["causal:oracle","causal:dcrl"]', "n": "1000"})
    assert not at.exception, [e.value for e in at.exception]
    assert not at.error, [e.value for e in at.error]
    scores = _scores(at).set_index("representation")
    assert list(scores.index) == ["Causal: oracle", "Causal: DCRL (diffusion)"]
    assert scores.loc["Causal: oracle", "D"] > 0.95 and scores.loc["Causal: oracle", "I"] > 0.95
    assert 0 <= scores.loc["Causal: DCRL (diffusion)", "I"] <= 1
