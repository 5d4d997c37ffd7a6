"""Hand-edited links never break a page: out-of-range values clamp to the widget's range, non-finite or
unreadable ones fall back to the default, and a toast says what changed."""

from __future__ import annotations

import pytest

from tests.conftest import run_page

CASES = [  # page, query, {session key: expected value}
    ("video", {"seed": "1e400", "steps": "100000", "box_x": "[0,999]", "region": "1"},
     {"seed": 0, "steps": 100, "box_x": (0, 32)}),
    ("video", {"steps": "0"}, {"steps": 1}),
    ("cells", {"w1": "1e308", "steps": "0", "seed": "1e400"}, {"w1": 3.0, "steps": 2, "seed": 0}),
    ("causal", {"iv_value": "inf", "seed": "1e400", "budget": "1e9"}, {"iv_value": 1.5, "seed": 0, "budget": 600}),
    ("slots", {"seed": "1e400", "n": "100000"}, {"seed": 0, "n": 64}),
    ("apt", {"seed": "1e400", "steps": "100000", "index": "-5"}, {"seed": 0, "steps": 1000, "index": 0}),
    ("disentangle", {"seed": "1e400", "k": "1e308"}, {"seed": 0, "k": 10}),
]


@pytest.mark.parametrize("page, query, want", CASES, ids=[f"{c[0]}-{'-'.join(c[1])}" for c in CASES])
def test_bad_link_values_are_clamped_or_reset_with_a_toast(page, query, want):
    at = run_page(query=query)
    at.switch_page(f"pages/{page}.py").run()
    assert not at.exception, [e.value for e in at.exception]
    assert at.title and at.title[0].value  # the page drew
    got = {k: at.session_state[f"{page}.{k}"] for k in want}
    assert got == want
    toasts = " ".join(t.value for t in at.toast)
    assert all(f"`{k}=" in toasts for k in want), toasts
