"""One file of the bad-input corpus per page, through the page itself: a clear `st.error` naming the file,
outside every expander and status box (which collapse), and no exception."""

from __future__ import annotations

from tests.conftest import ROOT, run_page

BAD = ROOT / "tests" / "data" / "bad"


def _boxed(at) -> list[str]:
    """The errors drawn inside an expander or a status box."""
    return [e.value for box in [*at.expander, *at.status] for e in box.get("error")]


def _upload(at, key: str, name: str, mime: str = "application/octet-stream"):
    at.file_uploader(key=key).set_value((name, (BAD / name).read_bytes(), mime)).run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def _named_error(at, name: str, fragment: str) -> str:
    msgs = [e.value for e in at.error if name in e.value]
    assert msgs and fragment in msgs[0], [e.value for e in at.error]
    assert not _boxed(at), _boxed(at)
    assert "0x" not in msgs[0] and "<_io" not in msgs[0]
    return msgs[0]


def test_slots_truncated_png():
    at = _upload(run_page("pages/slots.py"), "slots.upload", "truncated.png", "image/png")
    _named_error(at, "truncated.png", "could not be read as an image")


def test_apt_text_named_png():
    at = _upload(run_page("pages/apt.py", query={"source": "Upload", "steps": "20"}), "apt_upload", "text.png")
    _named_error(at, "text.png", "could not be read as an image")


def test_video_start_past_its_end():
    at = run_page("pages/video.py", query={"source": "upload", "start": "10"})
    _named_error(_upload(at, "video.upload", "short.gif", "image/gif"), "short.gif", "ends before the chosen")


def test_cells_nan_counts_then_a_12_cell_file_trains_without_metrics():
    at = run_page("pages/cells.py", query={"source": "upload"})
    _named_error(_upload(at, "cells.upload", "nan.h5ad"), "nan.h5ad", "NaN")
    at = _upload(at, "cells.upload", "ok_12_cells.h5ad")
    assert not at.error, [e.value for e in at.error]
    at.slider(key="cells.budget").set_value(10)
    at.button(key="cells.train").click().run()
    assert not at.exception, [e.value for e in at.exception]
    assert any("Metrics are unavailable" in s.value for s in at.success)
    assert any("Metrics are unavailable" in m.value for m in [*at.error, *at.info])


def test_disentangle_header_only_and_constant_factor():
    at = run_page("pages/disentangle.py", query={"sources": '["toy:identity"]'})
    _named_error(_upload(at, "disentangle.file", "header_only.csv", "text/csv"), "header_only.csv", "no data rows")
    at = _upload(at, "disentangle.file", "constant_factor.csv", "text/csv")
    _named_error(at, "constant_factor.csv", "constant")
    assert not at.warning  # nothing to fall back from: the bad file never joined the comparison
