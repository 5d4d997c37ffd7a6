"""VQA features, the downstream recipe on tiny data, and the shipped models on fresh scenes."""

import numpy as np
import pytest

from backend.core.registry import CHECKPOINT_DIR
from backend.vqa.features import gt_tokens, mask_features
from backend.vqa.train import VQARecipe, wilson


def test_mask_features_centroid_and_area():
    m = np.zeros((1, 2, 8, 8), np.float32)
    m[0, 0, :4, :] = 1  # top half
    m[0, 1, 4:, :] = 1  # bottom half
    f = mask_features(m)
    assert f.shape == (1, 2, 3)
    assert f[0, 0, 1] < 0.5 < f[0, 1, 1]  # y centroids
    assert np.allclose(f[0, :, 0], 0.5) and np.allclose(f[0, :, 2], 0.5)


def test_gt_tokens_pad_absent_objects():
    t = gt_tokens([[{"shape": "heart", "hue": 0.25, "x": 0.1, "y": 0.9, "size": 0.3}]])
    assert t.shape == (1, 4, 10) and t[0, 0, 3] == 1 and t[0, 0, -1] == 1 and not t[0, 1:].any()


def test_wilson_interval_contains_proportion():
    lo, hi = wilson(80, 100)
    assert lo < 0.8 < hi and hi - lo < 0.2


def test_recipe_trains_and_evaluates_on_tiny_data(tmp_path, monkeypatch):
    from backend.core.training import train
    from backend.vqa import train as vqa_train

    monkeypatch.setattr(vqa_train, "CACHE", tmp_path)

    r = VQARecipe(**VQARecipe.smoke)
    card = train(r, steps=12, save=False)
    assert set(card["metrics"]) >= {"question", "gt"}
    assert 0.0 <= card["metrics"]["gt"]["all"] <= 1.0
    assert any(t["metric"].startswith("ground-truth") for t in card["targets"])
    assert r.splits()["train"].tokens["gt"].shape[1:] == (4, 10)


@pytest.mark.slow
@pytest.mark.skipif(not (CHECKPOINT_DIR / "vqa.pt").exists(), reason="no shipped vqa checkpoint")
def test_trained_models_beat_question_only_on_fresh_scenes():
    from backend.slots import make_scenes
    from backend.vqa import answer, questions, representations

    images, _, objects = make_scenes(100, seed=23_777)  # never used by training, validation, test or the page
    qs = questions(objects, seed=5)
    y = np.array([q.answer_index for q in qs])
    acc = {r: float((answer(images, qs, r, objects).argmax(1) == y).mean())
           for r in ("question", "slots_mask", "gt") if r in representations()}
    assert acc["gt"] > acc["question"] + 0.05
    assert acc["slots_mask"] > acc["question"]
