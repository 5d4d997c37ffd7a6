"""Shared test fixtures: the project root, AppTest page runner, and a live server for browser tests."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
ARTIFACTS = ROOT / "test-artifacts"
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))
os.environ.setdefault("LATENTLAB_THREADS", "2")
os.environ.setdefault("LATENTLAB_WARMUP", "0")  # no background UMAP warm-up in tests (servers inherit this)


def run_page(page_file: str | None = None, timeout: float = 180, query: dict | None = None):
    """AppTest: run the entrypoint, then switch to `page_file` (e.g. "pages/slots.py") and run it."""
    from streamlit.testing.v1 import AppTest

    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=timeout)
    for k, v in (query or {}).items():
        at.query_params[k] = v
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    if page_file:
        at.switch_page(page_file).run()
    return at


@pytest.fixture
def app_page():
    return run_page


def _skip_or_fail(reason: str):
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(reason)
    print(f"\nSKIPPING browser tests: {reason}")
    pytest.skip(reason)


def start_server(log_name: str = "streamlit-server", env: dict | None = None):
    """Start `streamlit run app.py` on a free port and wait for /_stcore/health; return (proc, url).
    `env`: extra environment variables for the server (e.g. {"LATENTLAB_MAX_JOBS": "1"})."""
    from ui.loadtest import start_server as start

    return start(ARTIFACTS / f"{log_name}.log", env)


def require_browser() -> None:
    if not Path(CHROMIUM).exists():
        _skip_or_fail(f"{CHROMIUM} not found (install Debian's chromium package)")
    try:
        import playwright  # noqa: F401
    except ImportError:
        _skip_or_fail("playwright is not installed")


from ui.loadtest import CHROMIUM, CHROMIUM_ARGS, stop_server  # noqa: E402 - after the sys.path set-up above


@pytest.fixture(scope="session")
def server():
    """`streamlit run app.py` on a free port, health-checked; yields the base URL."""
    require_browser()
    proc, url = start_server()
    yield url
    stop_server(proc)


@pytest.fixture(scope="session")
def browser(server):
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        yield b
        b.close()


@pytest.fixture
def page(browser):
    ctx = browser.new_context(viewport={"width": 1400, "height": 1000})
    p = ctx.new_page()
    yield p
    ctx.close()


def wait_idle(page, timeout: float = 120_000) -> None:
    """Wait until the app finished its script run (as Streamlit's own e2e tests do)."""
    page.wait_for_timeout(250)
    page.wait_for_selector('[data-testid="stApp"][data-test-connection-state="CONNECTED"]', state="attached",
                           timeout=timeout)
    page.wait_for_selector('[data-testid="stApp"][data-test-script-state="notRunning"]', state="attached",
                           timeout=timeout)


def open_page(page, base_url: str, url_path: str = "", query: str = "", timeout: float = 180_000):
    """Open a page, wait until idle, assert no exception element, and save a screenshot."""
    page.goto(f"{base_url}/{url_path}{query}", timeout=timeout)
    page.wait_for_selector('[data-testid="stAppViewContainer"]', timeout=timeout)
    wait_idle(page, timeout)
    # every page starts with a title; a fresh server's first deep link reruns once through app.py, and
    # the app can look idle for a moment in between
    page.wait_for_selector('[data-testid="stMain"] h1', timeout=timeout)
    wait_idle(page, timeout)
    page.wait_for_function("document.querySelectorAll('[data-testid=stSkeleton]').length === 0", timeout=timeout)
    assert page.get_by_test_id("stException").count() == 0, f"exception shown on /{url_path}"
    return page


def screenshot(page, name: str) -> Path:
    ARTIFACTS.mkdir(exist_ok=True)
    page.wait_for_timeout(1000)  # let charts, tables and metrics paint after the run ends
    path = ARTIFACTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    return path
