"""Image and video encoding helpers shared by pages: nearest upscaling, PNG bytes, GIF/WebM clips."""

from __future__ import annotations

import io
import os
import tempfile

import numpy as np


def upscale(img: np.ndarray, factor: int) -> np.ndarray:
    """Nearest-neighbour upscaling of (H,W[,C]) or (N,H,W[,C]) uint8 images (no blur)."""
    factor = max(1, int(factor))
    if factor == 1:
        return img
    a = np.repeat(img, factor, axis=-3 if img.ndim >= 3 and img.shape[-1] in (1, 3, 4) else -2)
    return np.repeat(a, factor, axis=-2 if img.ndim >= 3 and img.shape[-1] in (1, 3, 4) else -1)


def png_bytes(img: np.ndarray) -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(np.asarray(img, dtype=np.uint8)).save(buf, format="PNG")
    return buf.getvalue()


def gif_bytes(frames: np.ndarray, fps: float = 6.0, scale: int = 4) -> bytes:
    """Animated GIF of uint8 (T,H,W,3) frames (plays in every browser)."""
    from PIL import Image

    frames = upscale(np.asarray(frames, dtype=np.uint8), scale)
    ims = [Image.fromarray(f) for f in frames]
    buf = io.BytesIO()
    ims[0].save(buf, format="GIF", save_all=True, append_images=ims[1:], duration=int(1000 / fps), loop=0)
    return buf.getvalue()


def webm_bytes(frames: np.ndarray, fps: float = 6.0, scale: int = 4) -> bytes | None:
    """VP9/VP8 WebM of uint8 (T,H,W,3) frames via OpenCV, or None when no WebM encoder is present."""
    import cv2

    frames = upscale(np.asarray(frames, dtype=np.uint8), scale)
    h, w = frames.shape[1:3]
    for fourcc in ("VP90", "VP80"):
        with tempfile.NamedTemporaryFile(suffix=".webm", delete=False) as f:
            path = f.name
        try:
            vw = cv2.VideoWriter(path, cv2.VideoWriter_fourcc(*fourcc), fps, (w, h))
            if not vw.isOpened():
                continue
            for fr in frames:
                vw.write(cv2.cvtColor(fr, cv2.COLOR_RGB2BGR))
            vw.release()
            data = open(path, "rb").read()
            if len(data) > 0:
                return data
        finally:
            os.unlink(path)
    return None
