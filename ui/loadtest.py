"""Load test of the app (`python -m backend.bench serve` runs this module in a fresh process).

One real `streamlit run app.py` server and N browser sessions at once (Debian's Chromium driven by
Playwright, one browser context per session, so each is a separate Streamlit session with its own
websocket). Every session opens a different page, then makes `actions` changes: it types a new value
into the page's first seed box (a page without one is reloaded), each a full script run on the server.
Reported per N: p50 / p95 latency from the change until the page is idle again, the peak RSS of the
server process (sampled every 50 ms; all sessions share its caches, models and job gate) and the number
of exceptions (an exception element on a page, or a browser step that failed). At the end every session
reads its seed box back: a value other than the one it typed means state leaked between sessions.

    python -m ui.loadtest --sessions 1,4,8 --actions 2      # prints the rows as JSON

Needs the test requirements (Playwright) and Chromium (`CHROMIUM`, default /usr/bin/chromium).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PAGES = ["slots", "video", "disentangle", "causal", "apt", "cells", "models", "", "vqa", "diffenc",
         "robustness"]  # "" is the home page; N sessions open the first N (cycling beyond 11)
CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
    "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-quic",
    "--disable-dev-shm-usage", "--use-angle=swiftshader", "--enable-unsafe-swiftshader",
]
_TITLE = '[data-testid="stMain"] h1, [data-testid="stException"]'  # a page drew its title, or failed before it
_SEED_BOX = 'input[type="number"][aria-label*="seed" i]'


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(log_path: Path, env: dict | None = None, timeout: float = 120):
    """Start `streamlit run app.py` on a free port and wait for /_stcore/health; return (proc, url)."""
    port = _free_port()
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with open(log_path, "w") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "streamlit", "run", "app.py", "--server.headless", "true",
             "--server.port", str(port), "--server.address", "127.0.0.1", "--server.fileWatcherType", "none",
             "--browser.gatherUsageStats", "false", "--global.developmentMode", "false"],
            cwd=ROOT, stdout=log, stderr=subprocess.STDOUT, env={**os.environ, **(env or {})})
    url, deadline = f"http://127.0.0.1:{port}", time.time() + timeout
    while True:
        try:
            if urllib.request.urlopen(url + "/_stcore/health", timeout=2).read() == b"ok":
                return proc, url
        except OSError:
            pass
        if proc.poll() is not None or time.time() > deadline:
            proc.kill()
            raise RuntimeError("streamlit did not become healthy:\n" + log_path.read_text())
        time.sleep(0.3)


def stop_server(proc) -> None:
    proc.terminate()
    try:
        proc.wait(10)
    except subprocess.TimeoutExpired:
        proc.kill()


def _rss_mb(pid: int) -> float:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


class _PeakRss:
    """Peak RSS of process `pid`, sampled every 50 ms in a thread while the block runs."""

    def __init__(self, pid: int):
        self.pid, self.peak, self._stop = pid, _rss_mb(pid), threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def _sample(self):
        while not self._stop.wait(0.05):
            self.peak = max(self.peak, _rss_mb(self.pid))

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, _rss_mb(self.pid))


async def _idle(page, timeout_ms: float) -> None:
    """Until the server finished the script run this page started (a run shorter than the first wait may
    be missed as 'running'; it has then ended anyway)."""
    try:
        await page.wait_for_selector('[data-testid="stApp"][data-test-script-state="running"]', state="attached",
                                     timeout=1500)
    except Exception:  # noqa: BLE001 - a quick run may be over before it is seen running
        pass
    await page.wait_for_selector('[data-testid="stApp"][data-test-connection-state="CONNECTED"]', state="attached",
                                 timeout=timeout_ms)
    await page.wait_for_selector('[data-testid="stApp"][data-test-script-state="notRunning"]', state="attached",
                                 timeout=timeout_ms)


async def _exceptions(page) -> int:
    return await page.get_by_test_id("stException").count()


async def _session(browser, base: str, i: int, actions: int, timeout_s: float, out: list, errors: list,
                   start: asyncio.Event, done: asyncio.Barrier) -> None:
    name, ms = PAGES[i % len(PAGES)], timeout_s * 1000
    label = name or "home"
    ctx = await browser.new_context(viewport={"width": 1400, "height": 1000})
    page, typed = await ctx.new_page(), None
    try:
        await start.wait()
        t0 = time.perf_counter()
        await page.goto(f"{base}/{name}", timeout=ms)
        await page.wait_for_selector(_TITLE, timeout=ms)
        await _idle(page, ms)
        out.append(("open", label, time.perf_counter() - t0))
        for k in range(actions):
            box = page.locator(_SEED_BOX).first
            t0 = time.perf_counter()
            if await box.count():
                typed = str(100 + 10 * i + k)  # a value of this session's own: a leak shows as another's
                await box.fill(typed)
                await box.press("Enter")
            else:
                await page.reload(timeout=ms)
                await page.wait_for_selector(_TITLE, timeout=ms)
            await _idle(page, ms)
            out.append(("change", label, time.perf_counter() - t0))
        if await _exceptions(page):
            errors.append(f"{label}: an exception is shown on the page")
    except Exception as e:  # noqa: BLE001 - counted and reported, the load test goes on
        errors.append(f"{label}: {type(e).__name__}: {str(e).splitlines()[0][:200]}")
    try:
        await asyncio.wait_for(done.wait(), timeout_s)  # every session has finished its changes
        if typed is not None:
            seen = await page.locator(_SEED_BOX).first.input_value()
            if seen != typed:
                errors.append(f"{label}: its seed box reads {seen} after the other sessions ran, expected {typed}")
    except Exception as e:  # noqa: BLE001
        errors.append(f"{label}: {type(e).__name__} while checking its state")
    finally:
        await ctx.close()


async def _round(base: str, n: int, actions: int, timeout_s: float, out: list, errors: list) -> None:
    from playwright.async_api import async_playwright

    async with async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        start, done = asyncio.Event(), asyncio.Barrier(n)
        tasks = [asyncio.create_task(_session(browser, base, i, actions, timeout_s, out, errors, start, done))
                 for i in range(n)]
        await asyncio.sleep(0.5)  # every context exists before the first request: the sessions start together
        start.set()
        await asyncio.gather(*tasks)
        await browser.close()


def _run_async(fn, *args) -> None:
    """`asyncio.run(fn(*args))` in a thread of its own: the caller may already run an event loop (a test
    session's sync Playwright does), and asyncio.run refuses to start inside one."""
    failure = []

    def target():
        try:
            asyncio.run(fn(*args))
        except BaseException as e:  # noqa: BLE001 - re-raised in the caller's thread
            failure.append(e)

    t = threading.Thread(target=target, name="loadtest")
    t.start()
    t.join()
    if failure:
        raise failure[0]


def _pct(values: list, q: float) -> float:
    v = sorted(values)
    if not v:
        return float("nan")
    k = (len(v) - 1) * q
    lo, hi = int(k), min(int(k) + 1, len(v) - 1)
    return v[lo] + (v[hi] - v[lo]) * (k - lo)


def run(sessions=(1, 4, 8), actions: int = 2, timeout: float = 600, warm: bool = True,
        env: dict | None = None) -> list[dict]:
    """One server for all rounds; with `warm`, every page is first opened once, alone (models and caches loaded)."""
    if not Path(CHROMIUM).exists():
        raise RuntimeError(f"{CHROMIUM} not found: install Debian's chromium package (or set CHROMIUM)")
    proc, base = start_server(ROOT / "test-artifacts" / "loadtest-server.log",
                              {"LATENTLAB_WARMUP": "0", **(env or {})})
    rows = []
    try:
        if warm:
            t0, errors = time.perf_counter(), []
            _run_async(_warm, base, timeout, errors)
            rows.append({"bench": "serve: warm-up (each page opened once, alone)", "sessions": 1, "runs": len(PAGES),
                         "wall_s": time.perf_counter() - t0, "peak_rss_mb": _rss_mb(proc.pid),
                         "exceptions": len(errors), "errors": "; ".join(errors)[:500] or None})
        for n in sessions:
            out, errors = [], []
            t0 = time.perf_counter()
            with _PeakRss(proc.pid) as rss:
                _run_async(_round, base, n, actions, timeout, out, errors)
            lat = [x[2] for x in out]
            rows.append({"bench": f"serve: {n} session(s) at once", "sessions": n, "runs": len(lat),
                         "p50_s": _pct(lat, 0.5), "p95_s": _pct(lat, 0.95), "max_s": max(lat, default=float("nan")),
                         "wall_s": time.perf_counter() - t0, "peak_rss_mb": rss.peak, "exceptions": len(errors),
                         "errors": "; ".join(errors)[:500] or None, "pages": ", ".join(sorted({x[1] for x in out}))})
    finally:
        stop_server(proc)
    return rows


async def _warm(base: str, timeout_s: float, errors: list) -> None:
    """Open every page once, one after the other, in one browser session."""
    from playwright.async_api import async_playwright

    async with async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        page = await browser.new_page(viewport={"width": 1400, "height": 1000})
        for name in PAGES:
            try:
                await page.goto(f"{base}/{name}", timeout=timeout_s * 1000)
                await page.wait_for_selector(_TITLE, timeout=timeout_s * 1000)
                await _idle(page, timeout_s * 1000)
                if await _exceptions(page):
                    errors.append(f"{name or 'home'}: an exception is shown on the page")
            except Exception as e:  # noqa: BLE001
                errors.append(f"{name or 'home'}: {type(e).__name__}")
        await browser.close()


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m ui.loadtest", description=__doc__.split("\n\n")[0])
    p.add_argument("--sessions", default="1,4,8", help="comma-separated numbers of simultaneous sessions")
    p.add_argument("--actions", type=int, default=2, help="seed changes per session after opening its page")
    p.add_argument("--cold", action="store_true", help="skip opening every page once before timing")
    a = p.parse_args(argv)
    rows = run([int(x) for x in a.sessions.split(",") if x.strip()], a.actions, warm=not a.cold)
    print(json.dumps(rows, indent=2, default=str))
    return 1 if any(r["exceptions"] for r in rows) else 0


if __name__ == "__main__":
    sys.exit(main())
