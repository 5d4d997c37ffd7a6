"""AppTest of the APT page: default view, a widget change, a run, an upload, the batch tab."""

from __future__ import annotations

import io

import numpy as np
from PIL import Image

from tests.conftest import run_page


def _png(arr: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, format="PNG")
    return buf.getvalue()


def test_apt_page_default_view_and_run():
    at = run_page("pages/apt.py", query={"steps": "40"})
    assert not at.exception, [e.value for e in at.exception]
    assert "APT" in at.title[0].value
    assert len(at.get("imgs")) >= 6 or len(at.image) >= 6  # original, pivot, APT, PGD, 2 difference maps
    assert len(at.dataframe) >= 1 and any("attack" in df.value.columns for df in at.dataframe)
    # the independent judge's reading of every attacked image
    table = next(df.value for df in at.dataframe if "judge reads" in df.value.columns)
    assert {"judge p(true class)", "fooled & kept"} <= set(table.columns) and len(table) == 2
    assert any("the judge reads" in h.value for h in at.subheader)
    assert any(b.label == "Run attack" for b in at.button)
    # change the digit and the classifier, then run
    at.number_input(key="apt.index").set_value(4).run()
    at.selectbox(key="apt.classifier").set_value("robust").run()
    assert not at.exception, [e.value for e in at.exception]
    assert any("Settings changed" in i.value for i in at.info)
    at.button(key="apt_run").click().run()
    assert not at.exception, [e.value for e in at.exception]
    assert any("vs robust" in h.value for h in at.subheader)
    assert at.query_params["classifier"] == ["robust"] or at.query_params["classifier"] == "robust"


def test_apt_page_upload_good_and_bad():
    at = run_page("pages/apt.py", query={"source": "Upload", "steps": "20"})
    assert not at.exception, [e.value for e in at.exception]
    assert any("Nothing to attack yet" in i.value for i in at.info)
    up = at.get("file_uploader")[0] if at.get("file_uploader") else None
    assert up is not None
    img = np.full((120, 90, 3), 255, np.uint8)
    img[20:100, 40:52] = 0  # a dark "1" on white
    at.file_uploader[0].set_value(("one.png", _png(img), "image/png")).run()
    assert not at.exception, [e.value for e in at.exception]
    assert any("Its class" in s.label for s in at.selectbox)
    # a user's image is attacked only on request: nothing runs until "Run attack"
    assert any("Press **Run attack**" in i.value for i in at.info) and not any(" vs " in h.value for h in at.subheader)
    at.button(key="apt_run").click().run()
    assert not at.exception, [e.value for e in at.exception]
    assert any("APT vs cnn" in h.value for h in at.subheader)
    at.file_uploader[0].set_value(("notes.png", b"this is not an image", "image/png")).run()
    assert not at.exception
    assert any("could not be read as an image" in e.value for e in at.error)


def test_apt_batch_tab_shows_card_results_and_runs_a_batch():
    at = run_page("pages/apt.py", query={"steps": "20", "batch_n": "1"})
    assert not at.exception
    assert any("Fooled and kept on" in m.value and "validation_set(30, seed=2)" in m.value for m in at.markdown)
    assert any("How the settings were chosen" in m.value for m in at.markdown)
    card = next(df.value for df in at.dataframe if "fooled_and_kept" in df.value.columns)
    assert {"apt", "pgd ε=0.1", "apt+pgd ε=0.1"} <= set(card["attack"]) and {"ssim", "l2", "linf"} <= set(card.columns)
    at.button(key="apt_batch_run").click().run(timeout=300)
    assert not at.exception, [e.value for e in at.exception]
    batch = at.dataframe[-1].value
    assert "fooled_and_kept" in batch.columns and batch["n"].max() == 1 and "pgd ε=0.3" in set(batch["attack"])
