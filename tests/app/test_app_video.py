"""AppTest of the Video infill page: default view, presets, a generation, an upload and a bad upload."""

from __future__ import annotations

import numpy as np

from tests.conftest import run_page

PAGE = "pages/video.py"


def test_default_view_shows_clip_baselines_sample_and_scores():
    at = run_page(PAGE)
    assert not at.exception, [e.value for e in at.exception]
    assert at.title[0].value == "Video infill"
    captions = " | ".join(c for im in at.image for c in im.captions)
    for part in ("Ground truth", "Given to the model", "Sample 1", "linear interpolation", "nearest given frame"):
        assert part in captions
    labels = [m.label for m in at.metric]
    assert "Model PSNR (mean of samples)" in labels and any("Linear interpolation" in lbl for lbl in labels)
    assert at.get("plotly_chart")
    assert len(at.get("download_button")) == 3
    assert not at.error
    table = at.dataframe[0].value  # the card's per-task table with intervals
    assert len(table) == 3 and "95 % interval" in table.columns and (table["gain (dB)"] > 0).all()


def test_presets_toggles_and_generate():
    at = run_page(PAGE)
    at.selectbox(key="video.preset").set_value("prediction").run()
    assert not at.exception
    assert list(at.session_state["video.given"]) == [0, 1, 2, 3]
    at.slider(key="video.steps").set_value(4).run()
    assert any("Press **Generate**" in i.value for i in at.info)
    at.button(key="video.generate").click().run()
    assert not at.exception and not at.error
    assert any(m.label == "Model PSNR (mean of samples)" and m.value != "–" for m in at.metric)
    # unconditional preset: nothing given
    at.selectbox(key="video.preset").set_value("unconditional").run()
    assert any("unconditional" in i.value for i in at.info)
    at.button(key="video.generate").click().run()
    assert not at.exception


def test_region_mask_and_url_state():
    at = run_page(PAGE, query={"kind": "digits", "clip_seed": "7", "steps": "3"})
    assert at.session_state["video.kind"] == "digits" and at.session_state["video.steps"] == 3
    at.toggle(key="video.region").set_value(True).run()
    at.pills(key="video.given").set_value(list(range(12))).run()
    assert not at.warning  # a rectangle in given frames leaves something to generate
    at.button(key="video.generate").click().run()
    assert not at.exception and not at.error


def test_upload_good_and_bad():
    from backend.core.media import gif_bytes
    from backend.video import make_videos

    at = run_page(PAGE)
    at.radio(key="video.source").set_value("upload").run()
    assert any("Upload a short video" in i.value for i in at.info)
    clip = make_videos(1, seed=11, num_frames=14)[0]
    at.file_uploader(key="video.upload").set_value(("clip.gif", gif_bytes(clip, scale=2), "image/gif")).run()
    assert not at.exception and not at.error
    at.file_uploader(key="video.upload").set_value(("bad.mp4", b"not a video at all" * 20, "video/mp4")).run()
    assert not at.exception
    assert at.error and "video" in at.error[0].value
    one = gif_bytes(np.zeros((1, 8, 8, 3), np.uint8), scale=1)
    at.file_uploader(key="video.upload").set_value(("one.gif", one, "image/gif")).run()
    assert at.error and "at least 2" in at.error[0].value
