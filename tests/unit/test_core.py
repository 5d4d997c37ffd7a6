"""Unit tests of backend.core: device, seeding, registry, progress, cache, upload validators."""

from __future__ import annotations

import io
import json
import subprocess
import sys
import threading

import numpy as np
import pytest
import torch

from backend.core import (
    Cancelled,
    CheckpointError,
    Progress,
    as_progress,
    cached,
    get_device,
    list_checkpoints,
    load_checkpoint,
    read_card,
    save_checkpoint,
    set_seed,
)
from backend.core.cards import ModelCard
from backend.core.training import write_checkpoint
from backend.core.uploads import load_h5ad, load_image, load_video
from tests.conftest import ROOT


# --- device -----------------------------------------------------------------------------------
def test_device_default_is_cpu_without_cuda(monkeypatch):
    monkeypatch.delenv("LATENTLAB_DEVICE", raising=False)
    expected = "cuda" if torch.cuda.is_available() else "cpu"
    assert get_device().type == expected


def test_device_env_override(monkeypatch):
    monkeypatch.setenv("LATENTLAB_DEVICE", "cpu")
    assert get_device().type == "cpu"
    assert get_device("cpu").type == "cpu"


@pytest.mark.skipif(torch.cuda.is_available(), reason="machine has CUDA")
def test_device_cuda_requested_without_cuda_is_clear(monkeypatch):
    monkeypatch.setenv("LATENTLAB_DEVICE", "cuda")
    with pytest.raises(ValueError, match="CUDA is not available"):
        get_device()


def test_device_unknown_name(monkeypatch):
    with pytest.raises(ValueError, match="Unknown device"):
        get_device("tpu9")


def test_threads_capped_for_small_machines():
    get_device()
    assert 1 <= torch.get_num_threads() <= 2


# --- seeding ----------------------------------------------------------------------------------
def test_seed_reproducible():
    g1 = set_seed(7)
    a = (torch.randn(5), np.random.rand(3), g1.normal(size=3))
    g2 = set_seed(7)
    b = (torch.randn(5), np.random.rand(3), g2.normal(size=3))
    assert torch.equal(a[0], b[0]) and np.array_equal(a[1], b[1]) and np.array_equal(a[2], b[2])
    set_seed(8)
    assert not torch.equal(a[0], torch.randn(5))


# --- registry ---------------------------------------------------------------------------------
def _card(name: str) -> ModelCard:
    return ModelCard(name=name, title="Toy", paper="-", data="-", config={"width": 3},
                     command=f"python -m backend.train {name}", device="cpu", steps=1, wall_time_s=0.0,
                     metrics={"acc": 0.9}, baselines={"chance": 0.1})


def test_registry_round_trip(tmp_path):
    payload = {"state_dict": {"w": torch.arange(6.0).reshape(2, 3)}, "config": {"width": 3, "name": "x"}}
    write_checkpoint("toy", payload, _card("toy"), directory=tmp_path)
    loaded, card = load_checkpoint("toy", directory=tmp_path)
    assert torch.equal(loaded["state_dict"]["w"], payload["state_dict"]["w"])
    assert loaded["config"] == {"width": 3, "name": "x"}
    assert card["metrics"]["acc"] == 0.9 and card["size_bytes"] == (tmp_path / "toy.pt").stat().st_size
    infos = list_checkpoints(tmp_path)
    assert [i.name for i in infos] == ["toy"] and infos[0].problem is None


def test_registry_missing_file_names_it(tmp_path):
    with pytest.raises(CheckpointError, match=r"nothing\.pt is missing.*backend\.train nothing"):
        load_checkpoint("nothing", directory=tmp_path)


def test_registry_corrupt_file_is_clear_error(tmp_path):
    write_checkpoint("toy", {"w": torch.ones(100)}, _card("toy"), directory=tmp_path)
    pt = tmp_path / "toy.pt"
    pt.write_bytes(pt.read_bytes()[: pt.stat().st_size // 2])  # truncate
    with pytest.raises(CheckpointError, match=r"toy\.pt is corrupt"):
        load_checkpoint("toy", directory=tmp_path)
    [info] = list_checkpoints(tmp_path)
    assert info.problem and "corrupt" in info.problem


def test_registry_corrupt_card_and_orphan_card(tmp_path):
    save_checkpoint("toy", {"w": torch.ones(2)}, directory=tmp_path)
    (tmp_path / "toy.json").write_text("{not json")
    with pytest.raises(CheckpointError, match="card .*toy.json is corrupt"):
        read_card("toy", directory=tmp_path)
    (tmp_path / "ghost.json").write_text("{}")
    write_checkpoint("diary", {"w": torch.ones(2)}, _card("diary"), directory=tmp_path)
    card = json.loads((tmp_path / "diary.json").read_text())
    (tmp_path / "diary.json").write_text(json.dumps({**card, "why": "a long story"}))
    problems = {i.name: i.problem for i in list_checkpoints(tmp_path)}
    assert "missing" in problems["ghost"] and "corrupt" in problems["toy"]
    assert "not a valid model card" in problems["diary"] and "why" in problems["diary"]


def test_registry_refuses_pickled_objects(tmp_path):
    from fractions import Fraction  # any non-allowlisted class stands in for arbitrary pickled code

    torch.save({"obj": Fraction(1, 3)}, tmp_path / "evil.pt")
    (tmp_path / "evil.json").write_text("{}")
    with pytest.raises(CheckpointError, match="corrupt or unreadable"):
        load_checkpoint("evil", directory=tmp_path)


def test_shipped_checkpoints_are_intact_and_small():
    for info in list_checkpoints():
        assert info.problem is None, info.problem
        assert info.size_bytes < 20 * 1024 * 1024, f"{info.name} is over 20 MB"
        card = info.card
        for key in ("command", "config", "steps", "wall_time_s", "metrics"):
            assert key in card, f"{info.name} card lacks {key}"


# --- progress ---------------------------------------------------------------------------------
def _work(n, progress=None):
    p = as_progress(progress)
    done = 0
    for i in range(n):
        done += 1
        p.update(i + 1, n, "working")
    return done


def test_progress_callable_receives_steps():
    seen = []
    assert _work(5, lambda s, t, m: seen.append((s, t, m))) == 5
    assert seen[-1] == (5, 5, "working") and len(seen) == 5


def test_progress_cancel_by_callback_return():
    seen = []

    def cb(s, t, m):
        seen.append(s)
        return s >= 3  # ask to stop at step 3

    with pytest.raises(Cancelled):
        _work(100, cb)
    assert seen == [1, 2, 3]


def test_progress_cancel_from_another_thread():
    p = Progress()
    p.cancel()
    with pytest.raises(Cancelled):
        _work(10, p)
    stop = threading.Event()
    p2 = Progress(should_stop=stop.is_set)
    assert _work(3, p2) == 3
    stop.set()
    with pytest.raises(Cancelled):
        _work(3, p2)


def test_progress_rejects_garbage():
    with pytest.raises(TypeError):
        as_progress(42)


# --- cache ------------------------------------------------------------------------------------
def test_cache_one_instance_per_key_under_concurrency():
    calls = []

    @cached
    def build(name, device="cpu"):
        calls.append(name)
        import time

        time.sleep(0.05)
        return object()

    results = []
    threads = [threading.Thread(target=lambda: results.append(build("m"))) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len({id(r) for r in results}) == 1 and calls == ["m"]
    assert build("m", device="cuda") is not results[0]
    build.cache_clear()
    assert build("m") is not results[0]


# --- uploads ----------------------------------------------------------------------------------
def _png(arr, mode=None) -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    (Image.fromarray(arr, mode) if mode else Image.fromarray(arr)).save(buf, format="PNG")
    return buf.getvalue()


def test_image_valid_rgb_gray_rgba_16bit():
    rgb = np.random.default_rng(0).integers(0, 255, (10, 12, 3), dtype=np.uint8)
    assert np.array_equal(load_image(_png(rgb)), rgb)
    gray = load_image(_png(np.full((5, 6), 100, np.uint8)))
    assert gray.shape == (5, 6, 3) and gray.dtype == np.uint8 and (gray == 100).all()
    rgba = np.zeros((4, 4, 4), np.uint8)
    rgba[..., 0] = 200
    rgba[..., 3] = 255
    assert (load_image(_png(rgba))[..., 0] == 200).all()
    sixteen = load_image(_png(np.full((4, 4), 65535, np.uint16)))
    assert sixteen.shape == (4, 4, 3) and (sixteen == 255).all()


def test_image_truncated_oversized_wrong_type_tiny():
    data = _png(np.zeros((64, 64, 3), np.uint8) + 7)
    with pytest.raises(ValueError, match="could not be read as an image"):
        load_image(data[: len(data) // 2])
    with pytest.raises(ValueError, match="limit is"):
        load_image(data, max_bytes=100)
    with pytest.raises(ValueError, match="could not be read as an image"):
        load_image(b"%PDF-1.4 definitely not a picture")
    with pytest.raises(ValueError, match="at least 2 pixels"):
        load_image(_png(np.zeros((1, 1, 3), np.uint8)))
    with pytest.raises(ValueError, match="megapixels"):
        load_image(_png(np.zeros((100, 100, 3), np.uint8)), max_pixels=5000)
    with pytest.raises(ValueError, match="empty"):
        load_image(b"")


def _gif(frames) -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    ims = [Image.fromarray(f) for f in frames]
    ims[0].save(buf, format="GIF", save_all=True, append_images=ims[1:], duration=100, loop=0)
    return buf.getvalue()


def test_video_valid_range_and_errors():
    frames = np.zeros((6, 16, 20, 3), np.uint8)
    for i in range(6):
        frames[i, :, : 3 * (i + 1)] = 255
    data = _gif(frames)
    v = load_video(data)
    assert v.shape == (6, 16, 20, 3) and v.dtype == np.uint8
    assert load_video(data, start=2, max_frames=3).shape[0] == 3
    with pytest.raises(ValueError, match="at least 2"):
        load_video(_gif(frames[:1]))
    with pytest.raises(ValueError, match="(could not be opened|No frames)"):
        load_video(b"this is plain text, not a video" * 10)
    with pytest.raises(ValueError, match="(could not be opened|No frames)"):
        load_video(data[:40])
    with pytest.raises(ValueError, match="limit is"):
        load_video(data, max_bytes=10)


def test_h5ad_valid_and_errors(tmp_path):
    import anndata as ad

    a = ad.AnnData(np.ones((3, 4), np.float32))
    p = tmp_path / "x.h5ad"
    a.write_h5ad(p)
    raw = p.read_bytes()
    assert load_h5ad(raw).shape == (3, 4)
    with pytest.raises(ValueError, match="not an .h5ad"):
        load_h5ad(b"cell,gene\n1,2\n")
    with pytest.raises(ValueError, match="could not be read"):
        load_h5ad(raw[: len(raw) // 3])
    with pytest.raises(ValueError, match="limit is"):
        load_h5ad(raw, max_bytes=100)


# --- boundaries -------------------------------------------------------------------------------
def test_backend_never_imports_streamlit():
    code = (
        "import sys, importlib, pkgutil, backend\n"
        "for m in pkgutil.walk_packages(backend.__path__, 'backend.'):\n"
        "    importlib.import_module(m.name)\n"
        "assert 'streamlit' not in sys.modules, 'backend imported streamlit'\n"
    )
    r = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]


def test_cli_help_lists_names():
    for mod in ("backend.train", "backend.bench"):
        r = subprocess.run([sys.executable, "-m", mod, "--help"], cwd=ROOT, capture_output=True, text=True,
                           timeout=300)
        assert r.returncode == 0, r.stderr
        assert ("Models:" if mod == "backend.train" else "Available") in r.stdout


def test_cli_unknown_name_is_clear():
    r = subprocess.run([sys.executable, "-m", "backend.train", "no-such-model"], cwd=ROOT, capture_output=True,
                       text=True, timeout=300)
    assert r.returncode == 2 and "unknown model" in r.stderr


def test_ruff_clean():
    r = subprocess.run([sys.executable, "-m", "ruff", "check", "."], cwd=ROOT, capture_output=True, text=True,
                       timeout=300)
    assert r.returncode == 0, r.stdout[-3000:]


# --- media ------------------------------------------------------------------------------------
def test_media_upscale_png_gif_webm():
    from PIL import Image

    from backend.core.media import gif_bytes, png_bytes, upscale, webm_bytes

    img = np.arange(2 * 3 * 3, dtype=np.uint8).reshape(2, 3, 3)
    big = upscale(img, 4)
    assert big.shape == (8, 12, 3) and (big[:4, :4] == img[0, 0]).all()
    assert upscale(np.zeros((5, 2, 3, 3), np.uint8), 2).shape == (5, 4, 6, 3)
    assert upscale(np.zeros((2, 3), np.uint8), 3).shape == (6, 9)
    back = np.asarray(Image.open(io.BytesIO(png_bytes(big))))
    assert np.array_equal(back, big)  # lossless
    frames = np.zeros((4, 8, 8, 3), np.uint8)
    for i in range(4):
        frames[i, :, : 2 * (i + 1)] = 255  # distinct frames (identical ones are merged by GIF encoders)
    gif = gif_bytes(frames, scale=2)
    assert gif[:6] == b"GIF89a" and Image.open(io.BytesIO(gif)).n_frames == 4
    webm = webm_bytes(frames, scale=4)
    assert webm is None or webm[:4] == b"\x1a\x45\xdf\xa3"
