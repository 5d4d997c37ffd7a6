"""The load benchmark (`python -m backend.bench serve`) on a small scale: two browser sessions at once against
a real server, each on its own page, finish their seed changes without an exception and keep their own values."""

from __future__ import annotations

import pytest

from tests.conftest import require_browser


@pytest.mark.e2e
def test_load_benchmark_two_sessions_without_exceptions():
    require_browser()
    from ui.loadtest import run

    (row,) = run([2], actions=1, warm=False)
    assert row["sessions"] == 2 and row["runs"] == 4, row  # 2 opens + 2 changes
    assert row["exceptions"] == 0, row["errors"]
    assert 0 < row["p50_s"] <= row["p95_s"] <= row["max_s"] and row["peak_rss_mb"] > 50, row
    assert row["pages"] == "slots, video", row
