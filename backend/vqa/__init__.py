"""Visual question answering over frozen representations of sprites scenes (Karimi Mamaghan et al., ICLR 2025).

Public API:
    questions(scenes, seed) -> list[Question]: balanced template questions from make_scenes ground truth
    load_model(representation) -> VQAModel, answer(images, questions, representation) -> probs (Q, len(ANSWERS))
    results() -> DataFrame: test accuracy by representation and question type with 95 % intervals
    ask(seed, index, question) -> Asked, report() -> VQAReport: one call per page request
"""

from backend.vqa.api import (
    BROWSE_SEED,
    Asked,
    VQAModel,
    VQAReport,
    answer,
    ask,
    load_model,
    report,
    representations,
    results,
)
from backend.vqa.features import LABELS, OBJECT_CENTRIC, REPRESENTATIONS
from backend.vqa.questions import ANSWERS, TEMPLATES, TYPES, Question, answer_counts, encode, questions

__all__ = [
    "ANSWERS", "BROWSE_SEED", "LABELS", "OBJECT_CENTRIC", "REPRESENTATIONS", "TEMPLATES", "TYPES", "Asked", "Question",
    "VQAModel", "VQAReport", "answer", "answer_counts", "ask", "encode", "load_model", "questions", "report",
    "representations", "results",
]
