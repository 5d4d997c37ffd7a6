"""Browser tests of the shell: Home and Models in Debian Chromium via Playwright, with screenshots."""

from __future__ import annotations

import time
import urllib.request

import pytest

from tests.conftest import open_page, screenshot, wait_idle
from ui.registry import available_pages

pytestmark = pytest.mark.e2e


def test_home_is_idle_quickly_and_shows_cards(server, page):
    t = time.time()
    open_page(page, server, "")
    elapsed = time.time() - t
    assert page.get_by_role("heading", name="Latent Lab").first.is_visible()
    for p in available_pages():
        assert page.get_by_text(f"Open {p.title}").count() >= 1
    sidebar = page.get_by_test_id("stSidebar")
    assert "Latent Lab v" in sidebar.inner_text()
    screenshot(page, "home")
    assert elapsed < 60, f"Home took {elapsed:.1f}s to become idle"


def test_models_page_and_url_state(server, page):
    open_page(page, server, "models")
    assert page.get_by_role("heading", name="Models").first.is_visible()
    screenshot(page, "models")
    body = page.inner_text("body")
    if "No checkpoints found" in body:
        return
    # the chosen model card is mirrored into the URL
    wait_idle(page)
    assert "model=" in page.url


def test_health_endpoint(server):
    assert urllib.request.urlopen(server + "/_stcore/health", timeout=5).read() == b"ok"


def test_deep_link_on_fresh_server_gets_app_frame(browser):
    """The first visitor of a fresh server opens /models directly: the app frame and nav must be there."""
    from tests.conftest import start_server, stop_server

    proc, url = start_server("streamlit-fresh-server")
    try:
        ctx = browser.new_context(viewport={"width": 1400, "height": 1000})
        p = ctx.new_page()
        open_page(p, url, "models")
        wait_idle(p)
        sidebar = p.get_by_test_id("stSidebar").inner_text()
        assert "Latent Lab v" in sidebar, sidebar
        assert "Home" in sidebar and "app\n" not in sidebar, sidebar
        assert p.get_by_role("heading", name="Models").first.is_visible()
        ctx.close()
    finally:
        stop_server(proc)
