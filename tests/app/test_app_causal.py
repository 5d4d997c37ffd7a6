"""AppTest of the Causal page: default view with the shipped learners, widgets, bad input."""

from __future__ import annotations

from tests.conftest import run_page

PAGE = "pages/causal.py"


def _texts(at):
    return " ".join([m.value for m in at.markdown] + [c.value for c in at.caption])


def test_default_view_shows_graph_images_and_results():
    at = run_page(PAGE)
    assert not at.exception, [e.value for e in at.exception]
    assert at.title[0].value.startswith("Causal")
    assert len(at.get("graphviz_chart")) >= 3  # true graph panel + true/estimated results
    assert len(at.get("imgs")) >= 2 or len(at.get("image")) >= 2
    labels = [m.label for m in at.metric]
    assert "MCC" in labels and "SHD to DAG" in labels
    mcc = float(next(m.value for m in at.metric if m.label == "MCC"))
    assert mcc > 0.5
    assert len(at.dataframe) >= 1
    assert len(at.get("download_button")) == 2
    assert not at.error


def test_widgets_cycle_and_oracle():
    at = run_page(PAGE)
    at.radio(key="causal.learner").set_value("oracle").run()
    assert not at.exception
    mcc = float(next(m.value for m in at.metric if m.label == "MCC"))
    assert mcc > 0.99
    # a cycle is refused with a clear message and nothing crashes
    edges = list(at.multiselect(key="causal.edges").value)
    at.multiselect(key="causal.edges").set_value(edges + ["Z2→Z1"]).run()
    assert not at.exception
    assert any("cycle" in e.value for e in at.error)
    # template picker resets the edges
    at.selectbox(key="causal.template").set_value("chain").run()
    assert not at.exception and not at.error
    assert list(at.multiselect(key="causal.edges").value) == ["Z1→Z2", "Z2→Z3", "Z3→Z4", "Z4→Z5"]


def test_bad_alpha_and_zero_samples():
    at = run_page(PAGE)
    at.radio(key="causal.learner").set_value("oracle").run()
    at.number_input(key="causal.alpha").set_value(1.0).run()
    assert not at.exception and any("alpha" in e.value for e in at.error)
    at.number_input(key="causal.alpha").set_value(0.01)
    at.number_input(key="causal.n_pairs").set_value(0).run()
    assert not at.exception and any("pairs" in e.value for e in at.error)


def test_intervention_controls_redraw_the_counterfactual():
    at = run_page(PAGE)
    at.selectbox(key="causal.iv_var").set_value("Z4").run()
    assert not at.exception
    caption = next(c.value for c in at.caption if c.value.startswith("Under do(Z4)"))
    assert "(Z2)" in caption  # the default graph's only descendant of Z4
    changed = next(df.value for df in at.dataframe if "changed" in df.value.columns)
    assert changed.set_index("variable")["changed"].to_dict() == {"Z1": False, "Z2": True, "Z3": False, "Z4": True,
                                                                  "Z5": False}
