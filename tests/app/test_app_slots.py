"""AppTest of the Slots page: default gallery, detail sliders, sorting, URL state, metrics, probe, uploads."""

from __future__ import annotations

import io

import numpy as np

from tests.conftest import run_page

PAGE = "pages/slots.py"


def _png(arr: np.ndarray, mode: str | None = None) -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    im = Image.fromarray(arr)
    assert mode is None or im.mode == mode, (im.mode, mode)
    im.save(buf, format="PNG")
    return buf.getvalue()


def _huge_png_header(w: int = 20_000, h: int = 20_000) -> bytes:
    """A PNG whose header says w x h (its pixel data is a stub): the size check must fire before decoding."""
    import struct
    import zlib

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    ihdr = struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + chunk(b"IEND", b"")


def test_default_view_gallery_detail_metrics_probe():
    at = run_page(PAGE)
    assert not at.exception, [e.value for e in at.exception]
    assert at.title[0].value == "Slots"
    labels = [m.label for m in at.metric]
    assert "FG-ARI, these 16 scenes" in labels and "FG-ARI, 1,000 held-out (card)" in labels
    imgs = at.get("image")
    assert len(imgs) >= 16 + 4  # gallery tiles + detail images
    caps = [c for im in imgs for c in im.captions]
    assert sum("FG-ARI" in c for c in caps) == 16 and "reconstruction" in caps and "ground truth" in caps
    assert "posterior given the image" in caps and any("posterior readout: FG-ARI" in m.value for m in at.markdown)
    assert len(at.tabs) == 5
    assert at.dataframe and at.get("plotly_chart")  # metrics table, probe-vs-FG-ARI plot
    readouts = [str(v) for df in at.dataframe for v in df.value.get("readout", [])]
    assert any("paper readout (3 iterations, no merging)" in v for v in readouts)
    assert any("Everything the shipped models add" in e.markdown[0].value for e in at.expander if e.markdown)
    assert len(at.get("download_button")) >= 3
    assert not at.error
    # a checkpoint that misses its target says so on the page
    from backend.slots import model_report

    missed = model_report("sprites").missed
    warning = next((w.value for w in at.warning if "misses its targets" in w.value), "")
    assert bool(missed) == bool(warning)
    assert all(f"{t['metric']} {t['value']:.3f}" in warning for t in missed)
    # histograms of the model and k-means on the same held-out scenes
    at.toggle(key="slots.hist_on").set_value(True).run()
    assert not at.exception
    assert len(at.get("plotly_chart")) >= 4  # three histograms + the probe plot
    assert any("posterior readout" in c.value for c in at.caption)
    assert any("by majority" in c.value and "objects first." in c.value for c in at.caption)  # coverage references


def test_sliders_sort_scene_and_url_state():
    at = run_page(PAGE, query={"variant": "textured", "seed": "7", "n": "8", "slots": "6", "iters": "4"})
    assert not at.exception
    assert at.session_state["slots.variant"] == "textured" and at.session_state["slots.n"] == 8
    assert "FG-ARI, these 8 scenes" in [m.label for m in at.metric]
    at.selectbox(key="slots.sort").set_value("worst FG-ARI first")
    at.number_input(key="slots.scene").set_value(3).run()
    assert not at.exception
    caps = [c for im in at.get("image") for c in im.captions]
    assert any(c.startswith("slot 5 mask") or c.startswith("slot 5: merged") for c in caps)  # 6 slots
    assert [c for c in caps if "FG-ARI" in c][0].startswith("scene ")
    at.slider(key="slots.slots").set_value(3)
    at.slider(key="slots.iters").set_value(1).run()
    assert not at.exception and not at.error
    assert at.query_params["slots"] == ["3"] or at.query_params["slots"] == "3"


def test_uploads_good_converted_and_bad():
    from backend.slots import make_scenes

    at = run_page(PAGE)
    up = at.file_uploader(key="slots.upload")
    img = make_scenes(1, seed=5)[0][0]
    big = np.kron(img, np.ones((5, 3, 1), np.uint8))  # 160x96, non-square
    up.set_value(("scene.png", _png(big), "image/png")).run()
    assert not at.exception and not at.error
    assert "your image (96×160)" in [c for im in at.get("image") for c in im.captions]
    # grayscale, RGBA and 16-bit are converted
    for arr, mode in [(big[..., 0], "L"), (np.dstack([big, np.full(big.shape[:2], 200, np.uint8)]), "RGBA"),
                      ((big[..., 0].astype(np.uint16) * 257), "I;16")]:
        at.file_uploader(key="slots.upload").set_value(("x.png", _png(arr, mode), "image/png")).run()
        assert not at.exception and not at.error, mode
    # not an image, truncated PNG, 1x1 pixel, 20000x20000: a clear message, the page keeps working
    for data, words in [(b"hello, not an image" * 10, "could not be read"), (_png(big)[:200], "could not be read"),
                        (_png(np.zeros((1, 1, 3), np.uint8)), "at least"), (_huge_png_header(), "pixels")]:
        at.file_uploader(key="slots.upload").set_value(("bad.png", data, "image/png")).run()
        assert not at.exception
        assert at.error and words in at.error[0].value, [e.value for e in at.error]
    assert at.metric  # the rest of the page still renders


def test_merge_toggle_defaults_on_and_switches_the_slot_columns():
    """Duplicate-slot merging is on by default (the card's threshold) and in the URL; off, no slot column says it
    was merged and the scene's mIoU is the plain argmax's. The metrics tab shows both readouts."""
    from backend.slots import load_model, make_scenes, miou, model_report

    report = model_report("sprites")
    at = run_page(PAGE, query={"n": "8", "seed": "3"})
    assert not at.exception
    assert at.toggle(key="slots.merge").value is True
    methods = next(list(df.value["method"]) for df in at.dataframe if "method" in df.value)
    assert "Slot Attention (duplicate slots merged)" in methods and "Slot Attention, no merging" in methods
    assert any(f"cosine similarity above {report.merge}" in c.value for c in at.caption)
    # find a scene where merging removed a slot, show it, then switch merging off
    imgs, labels, _ = make_scenes(8, seed=3, variant="sprites")
    seg = load_model("sprites").segment(imgs)
    i = int(np.flatnonzero((seg.merged_into != np.arange(seg.masks.shape[1])).any(1))[0])
    at.number_input(key="slots.scene").set_value(i).run()
    caps = [c for im in at.get("image") for c in im.captions]
    assert any("merged into slot" in c for c in caps)
    at.toggle(key="slots.merge").set_value(False).run()
    assert not at.exception and not at.error
    caps = [c for im in at.get("image") for c in im.captions]
    assert not any("merged into slot" in c for c in caps)
    plain = miou(labels[i : i + 1], load_model("sprites").segment(imgs, merge=False).masks[i : i + 1])
    assert any(f"mIoU {plain:.3f}" in m.value for m in at.markdown)
    assert at.query_params["merge"] in ("0", ["0"], "false", ["false"])


def test_test_time_passes_from_the_url_change_the_scores_and_the_metrics_rows():
    """`passes` comes from the URL, the gallery and detail scores are those of `segment(passes=...)`, a value not
    offered falls back to 1, and the metrics tab shows the card's averaged row and the coverage references."""
    from backend.slots import ari_per_image, load_model, make_scenes, model_report

    report = model_report("sprites")
    at = run_page(PAGE, query={"n": "4", "seed": "5", "passes": "4"})
    assert not at.exception, [e.value for e in at.exception]
    assert at.select_slider(key="slots.passes").value == 4
    imgs, labels, _ = make_scenes(4, seed=5, variant="sprites")
    four = ari_per_image(labels, load_model("sprites").segment(imgs, passes=4).masks)
    assert any(f"FG-ARI {four[0]:.3f}" in m.value for m in at.markdown)  # scene 0 in the detail view
    assert at.metric[0].value == f"{four.mean():.3f}"
    methods = next(list(df.value["method"]) for df in at.dataframe if "method" in df.value)
    assert (f"Slot Attention, averaged over {report.passes} test-time passes" in methods) == (report.passes > 1)
    assert {"Reference: true pixel coverage, majority", "Reference: true pixel coverage, objects first"} <= set(methods)
    assert any("references, not bounds" in c.value for c in at.caption)
    bad = run_page(PAGE, query={"n": "4", "passes": "3"})
    assert not bad.exception and bad.select_slider(key="slots.passes").value == 1
