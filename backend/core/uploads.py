"""Validation of user uploads: images, videos and .h5ad files.

Every problem (too big, not decodable, wrong shape) becomes a `ValueError` with a sentence a user can
act on; pages show it with `st.error`. Images and videos come back as uint8 RGB arrays.
"""

from __future__ import annotations

import io
import os
import tempfile

import numpy as np

MB = 1024 * 1024
MAX_IMAGE_BYTES = 20 * MB
MAX_IMAGE_PIXELS = 40_000_000  # about 6300 x 6300
MAX_VIDEO_BYTES = 200 * MB
MAX_H5AD_BYTES = 200 * MB


def as_bytes(data) -> bytes:
    """Bytes of an upload (Streamlit UploadedFile, file object or bytes)."""
    if hasattr(data, "getvalue"):
        return data.getvalue()
    if hasattr(data, "read"):
        return data.read()
    return bytes(data)


def check_size(raw: bytes, cap: int, what: str) -> None:
    """ValueError for an empty upload or one over `cap` bytes, naming `what` it is."""
    if len(raw) == 0:
        raise ValueError(f"The {what} file is empty.")
    if len(raw) > cap:
        raise ValueError(f"The {what} file is {len(raw) / MB:.1f} MB; the limit is {cap / MB:.0f} MB.")


def load_image(data, max_bytes: int = MAX_IMAGE_BYTES, max_pixels: int = MAX_IMAGE_PIXELS,
               min_side: int = 2) -> np.ndarray:
    """Decode an uploaded image (PNG/JPEG/...) to uint8 RGB (H, W, 3).

    Grayscale, palette, RGBA (composited on black) and 16-bit images are converted.
    """
    from PIL import Image, UnidentifiedImageError

    raw = as_bytes(data)
    check_size(raw, max_bytes, "image")
    try:
        with Image.open(io.BytesIO(raw)) as im:
            w, h = im.size
            if w * h > max_pixels:
                raise ValueError(
                    f"The image is {w}×{h} pixels; the limit is {max_pixels / 1e6:.0f} megapixels. Downscale it first."
                )
            if min(w, h) < min_side:
                raise ValueError(f"The image is {w}×{h} pixels; it needs at least {min_side} pixels per side.")
            im.load()
            arr = _pil_to_rgb(im)
    except ValueError:
        raise
    except (UnidentifiedImageError, OSError, SyntaxError, Image.DecompressionBombError) as e:
        raise ValueError(f"This file could not be read as an image ({_short(e)}). Upload a PNG or JPEG.") from e
    return arr


def _pil_to_rgb(im) -> np.ndarray:
    if im.mode in ("I;16", "I;16B", "I;16L", "I"):
        a = np.asarray(im, dtype=np.float64)
        hi = 65535.0 if a.max() > 255 else 255.0
        a = np.clip(a / hi * 255.0, 0, 255).astype(np.uint8)
        return np.repeat(a[..., None], 3, axis=2)
    if im.mode == "F":
        a = np.asarray(im, dtype=np.float64)
        lo, hi = float(np.nanmin(a)), float(np.nanmax(a))
        a = (a - lo) / (hi - lo) if hi > lo else np.zeros_like(a)
        return np.repeat((a * 255).astype(np.uint8)[..., None], 3, axis=2)
    if im.mode in ("RGBA", "LA", "PA") or (im.mode == "P" and "transparency" in im.info):
        rgba = np.asarray(im.convert("RGBA"), dtype=np.float32)
        rgb = rgba[..., :3] * (rgba[..., 3:] / 255.0)
        return np.clip(np.rint(rgb), 0, 255).astype(np.uint8)
    return np.ascontiguousarray(np.asarray(im.convert("RGB"), dtype=np.uint8))


def _short(e: Exception) -> str:
    s = str(e) or type(e).__name__
    return s if len(s) < 120 else s[:117] + "..."


def load_video(data, max_bytes: int = MAX_VIDEO_BYTES, start: int = 0, max_frames: int = 64,
               min_frames: int = 2, max_side: int = 4096) -> np.ndarray:
    """Decode frames [start, start + max_frames) of an uploaded video (mp4/webm/gif/avi) with OpenCV.

    Only the chosen range is read, so a long video costs no more than its first frames. Returns uint8
    RGB (T, H, W, 3). Grayscale is converted; frames wider than `max_side` are downscaled.
    """
    import cv2

    raw = as_bytes(data)
    check_size(raw, max_bytes, "video")
    with tempfile.NamedTemporaryFile(suffix=_guess_suffix(raw), delete=False) as f:
        f.write(raw)
        path = f.name
    try:
        cap = cv2.VideoCapture(path)
        if not cap.isOpened():
            raise ValueError("This file could not be opened as a video. Upload an mp4, webm, gif or avi file.")
        n_total = int(cap.get(cv2.CAP_PROP_FRAME_COUNT) or 0)
        if start > 0:
            cap.set(cv2.CAP_PROP_POS_FRAMES, start)
        frames = []
        while len(frames) < max_frames:
            ok, fr = cap.read()
            if not ok or fr is None:
                break
            if fr.ndim == 2:
                fr = cv2.cvtColor(fr, cv2.COLOR_GRAY2BGR)
            elif fr.shape[2] == 4:
                fr = cv2.cvtColor(fr, cv2.COLOR_BGRA2BGR)
            h, w = fr.shape[:2]
            if max(h, w) > max_side:
                s = max_side / max(h, w)
                fr = cv2.resize(fr, (max(1, int(w * s)), max(1, int(h * s))), interpolation=cv2.INTER_AREA)
            frames.append(cv2.cvtColor(fr, cv2.COLOR_BGR2RGB))
        cap.release()
    finally:
        os.unlink(path)
    if not frames:
        raise ValueError("No frames could be decoded from this file: it is not a video, or it is truncated.")
    if len(frames) < min_frames:
        more = f" (from frame {start} of {n_total})" if start else ""
        raise ValueError(f"The video has {len(frames)} readable frame{'s' * (len(frames) != 1)}{more}; "
                         f"a clip needs at least {min_frames}.")
    shapes = {f.shape for f in frames}
    if len(shapes) > 1:
        frames = [cv2.resize(f, frames[0].shape[1::-1]) for f in frames]
    return np.stack(frames).astype(np.uint8)


def video_frame_count(data) -> int:
    """Frame count reported by the container (0 when unknown)."""
    import cv2

    raw = as_bytes(data)
    with tempfile.NamedTemporaryFile(suffix=_guess_suffix(raw), delete=False) as f:
        f.write(raw)
        path = f.name
    try:
        cap = cv2.VideoCapture(path)
        n = int(cap.get(cv2.CAP_PROP_FRAME_COUNT) or 0) if cap.isOpened() else 0
        cap.release()
    finally:
        os.unlink(path)
    return max(n, 0)


def _guess_suffix(raw: bytes) -> str:
    if raw[:6] in (b"GIF87a", b"GIF89a"):
        return ".gif"
    if raw[:4] == b"\x1a\x45\xdf\xa3":
        return ".webm"
    if raw[:4] == b"RIFF":
        return ".avi"
    return ".mp4"


def load_h5ad(data, max_bytes: int = MAX_H5AD_BYTES):
    """Read an uploaded .h5ad into AnnData; clear errors for non-HDF5 or unreadable files."""
    import anndata as ad

    raw = as_bytes(data)
    check_size(raw, max_bytes, ".h5ad")
    if raw[:8] != b"\x89HDF\r\n\x1a\n":
        raise ValueError("This is not an .h5ad file (no HDF5 signature). Save your data with `adata.write_h5ad(...)`.")
    with tempfile.NamedTemporaryFile(suffix=".h5ad", delete=False) as f:
        f.write(raw)
        path = f.name
    try:
        adata = ad.read_h5ad(path)
    except Exception as e:  # h5py/anndata raise many types for truncated or foreign files
        raise ValueError(f"The .h5ad file could not be read ({_short(e)}); it may be truncated.") from e
    finally:
        os.unlink(path)
    if adata.n_obs == 0:
        raise ValueError("The .h5ad file holds no cells.")
    if adata.n_vars == 0:
        raise ValueError("The .h5ad file holds no genes.")
    return adata
