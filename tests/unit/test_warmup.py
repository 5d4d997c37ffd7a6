"""The background UMAP warm-up: off with LATENTLAB_WARMUP=0, started once per process, and the note a page
shows while a visitor needs UMAP before it is warm."""

from __future__ import annotations

import threading

import pytest

from ui import warmup


@pytest.fixture
def fresh(monkeypatch):
    monkeypatch.setattr(warmup, "_state", {"started": None, "finished": None, "error": None})
    monkeypatch.setattr(warmup, "_done", threading.Event())
    return warmup


def test_disabled_by_env(fresh, monkeypatch):
    monkeypatch.setenv("LATENTLAB_WARMUP", "0")
    assert fresh.start() is False and fresh._state["started"] is None
    assert fresh.umap_note("knn") == ""  # k-NN placement needs no UMAP
    assert "compiles its code first" in fresh.umap_note("umap")


def test_started_once_and_the_note_follows_its_progress(fresh, monkeypatch):
    monkeypatch.setenv("LATENTLAB_WARMUP", "1")
    release, calls = threading.Event(), []

    def fake_warm():  # stands in for fitting the bundled cells' UMAP (60-100 s of numba compilation)
        calls.append(1)
        release.wait(10)
        fresh._state["finished"] = 1.0
        fresh._done.set()

    monkeypatch.setattr(fresh, "_warm_umap", fake_warm)
    assert fresh.start() is True
    assert fresh.start() is False  # once per process, whatever reruns app.py
    assert "still warming up in the background" in fresh.umap_note("joint")
    release.set()
    assert fresh._done.wait(10) and calls == [1]
    assert fresh.umap_ready() and fresh.umap_note("umap") == ""
