"""Hand-edited links in the browser: no traceback on any page; a toast names the values that were changed."""

from __future__ import annotations

import pytest

from tests.conftest import wait_idle

LINKS = [
    ("video", "?seed=1e400&steps=100000&box_x=[0,999]&region=1", ["seed=1e400", "steps=100000", "box_x=[0,999]"]),
    ("video", "?steps=0", ["steps=0"]),
    ("cells", "?w1=1e308&seed=1e400", ["w1=1e308", "seed=1e400"]),
    ("causal", "?iv_value=inf&seed=1e400", ["iv_value=inf", "seed=1e400"]),
    ("slots", "?seed=1e400&n=100000", ["seed=1e400", "n=100000"]),
    ("apt", "?seed=1e400&steps=100000", ["seed=1e400", "steps=100000"]),
    ("disentangle", "?seed=1e400&k=1e308", ["seed=1e400", "k=1e308"]),
]


@pytest.mark.e2e
@pytest.mark.parametrize("path, query, named", LINKS, ids=[f"{p}{q}" for p, q, _ in LINKS])
def test_bad_link_values_show_a_toast_not_a_traceback(server, page, path, query, named):
    from playwright.sync_api import expect

    page.goto(f"{server}/{path}{query}", timeout=180_000)
    toast = page.get_by_test_id("stToast").filter(has_text="The link had values")
    expect(toast.first).to_be_visible(timeout=120_000)  # shown for 20 s, from the start of the page's run
    text = toast.first.inner_text()
    assert all(n in text for n in named), text
    page.wait_for_selector('[data-testid="stMain"] h1', timeout=180_000)
    wait_idle(page, 180_000)
    assert page.get_by_test_id("stException").count() == 0  # the page drew in full, with no traceback
