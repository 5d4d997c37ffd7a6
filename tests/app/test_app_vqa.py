"""AppTest of the VQA page: a scene's answers per representation, a composed question, a bad word, results."""

from __future__ import annotations

import pytest

from backend.core.registry import CHECKPOINT_DIR
from tests.conftest import run_page

PAGE = "pages/vqa.py"
pytestmark = pytest.mark.skipif(not (CHECKPOINT_DIR / "vqa.pt").exists(), reason="no shipped vqa checkpoint")


def _answers(at):
    for df in at.dataframe:
        if "answer" in df.value.columns:
            return df.value
    raise AssertionError("no answers table on the page")


def test_default_view_answers_with_every_representation():
    at = run_page(PAGE)
    assert not at.exception, [e.value for e in at.exception]
    assert not at.error, [e.value for e in at.error]
    assert at.title[0].value.startswith("VQA")
    answers = _answers(at)
    from backend.vqa import representations

    assert len(answers) == len(representations())
    assert answers["probability"].between(0, 1).all()
    assert any("True answer" in m.value for m in at.markdown)
    assert len(at.get("plotly_chart")) >= 3  # probabilities, accuracy by type, accuracy vs steps / FG-ARI


def test_composed_question_and_unknown_word():
    at = run_page(PAGE, query={"scene": "3", "custom": "how many circles are there"})
    assert not at.exception, [e.value for e in at.exception]
    assert any("how many circles are there?" in m.value for m in at.markdown)
    at.text_input(key="vqa.custom").set_value("how many purple things").run()
    assert not at.exception
    assert any("Unknown word" in e.value for e in at.error)  # shown, then the default question is answered
    assert len(_answers(at)) >= 2
