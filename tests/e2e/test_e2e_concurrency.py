"""Four browser sessions on four pages at once against one server that runs one heavy job at a time
(LATENTLAB_MAX_JOBS=1): every page finishes without an exception, a waiting job shows its queue position,
and each session sees only its own results."""

from __future__ import annotations

import re
import time

import pytest

from tests.conftest import ARTIFACTS, require_browser, start_server, stop_server, wait_idle

SESSIONS = {  # name: (url path + query, text only this session's results contain)
    "video": ("video?seed=11&steps=100&samples=4", "Sample 4 (seed 11"),
    "disentangle": ("disentangle?seed=44&n=1000", "Probe trained on 700 samples"),  # n=1000: a 700/300 split
    "slots": ("slots?n=8&seed=33", "these 8 scenes"),
    "apt": ("apt?classifier=mlp&steps=40", "APT vs mlp"),
}


@pytest.fixture(scope="module")
def busy_server():
    require_browser()
    proc, url = start_server("streamlit-server-concurrency", env={"LATENTLAB_MAX_JOBS": "1"})
    yield url
    stop_server(proc)


@pytest.mark.e2e
def test_four_sessions_at_once_queue_and_stay_isolated(busy_server, browser):
    # the session's one Playwright instance (a second sync_playwright in the same process is refused)
    contexts = [browser.new_context(viewport={"width": 1400, "height": 1000}) for _ in SESSIONS]
    pages = {name: ctx.new_page() for name, ctx in zip(SESSIONS, contexts)}
    try:
        video = pages["video"]
        video.goto(f"{busy_server}/{SESSIONS['video'][0]}", timeout=180_000)
        video.wait_for_selector('[data-testid="stMain"] h1', timeout=180_000)
        wait_idle(video, 180_000)
        video.get_by_role("button", name=re.compile(r"^Generate \(")).click()  # a long heavy job holds the slot
        video.get_by_text("denoising step", exact=False).first.wait_for(timeout=60_000)
        for name in ("disentangle", "slots", "apt"):  # the other three open while it runs
            pages[name].goto(f"{busy_server}/{SESSIONS[name][0]}", wait_until="commit", timeout=180_000)
        queued, deadline = set(), time.time() + 400
        while time.time() < deadline:
            for name, p in pages.items():
                if p.get_by_text(re.compile(r"Queued: position \d+ of \d+")).count():
                    queued.add(name)
            if all(p.get_by_text(SESSIONS[n][1], exact=False).count() for n, p in pages.items()):
                break
            time.sleep(0.3)
        ARTIFACTS.mkdir(exist_ok=True)
        for name, p in pages.items():
            wait_idle(p, 180_000)
            p.screenshot(path=str(ARTIFACTS / f"concurrency-{name}.png"), full_page=True)
            assert p.get_by_test_id("stException").count() == 0, f"exception on {name}"
            assert p.get_by_text(SESSIONS[name][1], exact=False).count(), f"{name} did not show its own result"
            for other, (_, marker) in SESSIONS.items():  # nothing of the other sessions leaks in
                if other != name:
                    assert p.get_by_text(marker, exact=False).count() == 0, f"{other}'s result shown on {name}"
        assert "disentangle" in queued, "the job waiting behind the video sampling showed no queue position"
    finally:
        for ctx in contexts:
            ctx.close()
