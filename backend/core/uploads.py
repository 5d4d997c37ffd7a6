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
# Caps on what an upload may hold once DECODED (read from its header before decoding), so a small compressed
# file cannot claim gigabytes of memory; the byte caps only bound the transfer.
MAX_IMAGE_BYTES = 20 * MB
MAX_IMAGE_PIXELS = 16_000_000  # decoded pixels (about 4000 x 4000); JPEGs are first decoded at a reduced scale
MAX_IMAGE_SIDE = 2048  # larger images are shrunk to this longer side right after decoding
MAX_VIDEO_BYTES = 200 * MB
MAX_VIDEO_FRAME_PIXELS = 8_300_000  # 3840 x 2160 (4K UHD) per frame
MAX_VIDEO_DECODED_BYTES = 256 * MB  # the kept frames (T x H x W x 3 bytes); frames are shrunk to fit
MAX_H5AD_BYTES = 200 * MB
MAX_H5AD_DECODED_BYTES = 320 * MB  # all arrays of an .h5ad, summed, as stored (dense X counts every cell x gene)
MAX_H5AD_VALUES = 25_000_000  # stored values of the count matrix (dense: cells x genes; sparse: non-zeros)


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
               min_side: int = 2, max_side: int = MAX_IMAGE_SIDE) -> np.ndarray:
    """Decode an uploaded image (PNG/JPEG/GIF/...) to uint8 RGB (H, W, 3), at most `max_side` on its longer side.

    The pixel count is read from the header and checked against `max_pixels` before anything is decoded.
    Grayscale, palette, RGBA (composited on black) and 16-bit images are converted.
    """
    from PIL import Image, UnidentifiedImageError

    raw = as_bytes(data)
    check_size(raw, max_bytes, "image")
    try:
        with Image.open(io.BytesIO(raw)) as im:
            w, h = im.size
            if min(w, h) < min_side:
                raise ValueError(f"The image is {w}×{h} pixels; it needs at least {min_side} pixels per side.")
            if im.format == "JPEG" and max(w, h) > max_side:
                im.draft("RGB", (max_side, max_side))  # JPEG decodes at 1/2, 1/4 or 1/8 scale directly
            dw, dh = im.size
            if dw * dh > max_pixels:
                raise ValueError(f"The image is {w}×{h} pixels; the limit is {max_pixels / 1e6:.0f} megapixels "
                                 "decoded. Downscale it first.")
            im.load()
            if max(dw, dh) > max_side:
                im.thumbnail((max_side, max_side), Image.Resampling.BOX)
            arr = _pil_to_rgb(im)
    except ValueError:
        raise
    except Image.DecompressionBombError as e:  # PIL's own guard, hit at open for headers far over our cap
        raise ValueError(f"The image has far more pixels than the limit of {max_pixels / 1e6:.0f} megapixels "
                         "decoded. Downscale it first.") from e
    except (UnidentifiedImageError, OSError, SyntaxError) as e:
        raise ValueError("This file could not be read as an image: it is not an image, or it is truncated. "
                         "Upload a PNG or JPEG.") from e
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


def load_video(data, max_bytes: int = MAX_VIDEO_BYTES, start: int = 0, max_frames: int = 64,
               min_frames: int = 2, max_side: int = 4096, max_frame_pixels: int = MAX_VIDEO_FRAME_PIXELS,
               max_decoded: int = MAX_VIDEO_DECODED_BYTES) -> np.ndarray:
    """Decode frames [start, start + max_frames) of an uploaded video (mp4/webm/gif/avi) with OpenCV.

    The frame size and count are read from the container header first: a frame over `max_frame_pixels` is
    refused, and the kept frames are shrunk so that all of them hold at most `max_decoded` bytes. Only the chosen
    range is read, so a long video costs no more than its first frames. Returns uint8 RGB (T, H, W, 3).
    Grayscale is converted; frames wider than `max_side` are downscaled.
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
        w0, h0 = int(cap.get(cv2.CAP_PROP_FRAME_WIDTH) or 0), int(cap.get(cv2.CAP_PROP_FRAME_HEIGHT) or 0)
        if w0 * h0 > max_frame_pixels:
            cap.release()
            raise ValueError(f"The video's frames are {w0}×{h0} pixels; the limit is {max_frame_pixels / 1e6:.1f} "
                             "megapixels per frame (4K). Downscale it first.")
        if 0 < n_total <= start:
            cap.release()
            raise ValueError(f"The video has {n_total} frames, so it ends before the chosen first frame ({start}); "
                             f"choose a first frame below {n_total - min_frames + 1}.")
        # the kept frames fit `max_decoded`: shrink each so that max_frames of them do
        budget_side = int(np.sqrt(max_decoded / (3 * max(1, max_frames)) * max(w0, h0) / max(1, min(w0, h0))))
        side = max(2, min(max_side, budget_side))
        if start > 0:
            cap.set(cv2.CAP_PROP_POS_FRAMES, start)
        frames = []
        while len(frames) < max_frames:
            ok, fr = cap.read()
            if not ok or fr is None:
                break
            if fr.shape[0] * fr.shape[1] > max_frame_pixels:  # a header that under-reported the size
                cap.release()
                raise ValueError(f"The video's frames are {fr.shape[1]}×{fr.shape[0]} pixels; the limit is "
                                 f"{max_frame_pixels / 1e6:.1f} megapixels per frame (4K). Downscale it first.")
            if fr.ndim == 2:
                fr = cv2.cvtColor(fr, cv2.COLOR_GRAY2BGR)
            elif fr.shape[2] == 4:
                fr = cv2.cvtColor(fr, cv2.COLOR_BGRA2BGR)
            h, w = fr.shape[:2]
            if max(h, w) > side:
                s = side / max(h, w)
                fr = cv2.resize(fr, (max(1, int(w * s)), max(1, int(h * s))), interpolation=cv2.INTER_AREA)
            frames.append(cv2.cvtColor(fr, cv2.COLOR_BGR2RGB))
        cap.release()
    finally:
        os.unlink(path)
    if not frames:
        if start > 0:
            raise ValueError(f"No frames could be decoded from frame {start} on: the video may end before it; "
                             "choose an earlier first frame.")
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


def h5ad_budget(path: str, max_decoded: int = MAX_H5AD_DECODED_BYTES, max_values: int = MAX_H5AD_VALUES) -> dict:
    """Read the shapes and types of every array in an .h5ad (HDF5 headers only, nothing decoded) and refuse the
    file when, decoded, it would exceed `max_decoded` bytes, its count matrix (`X` or `layers/counts`) more than
    `max_values` stored values, or its matrix holds complex or non-numeric values. Returns {array path: bytes}."""
    import h5py

    sizes, kinds = {}, {}

    def visit(name, obj):
        if isinstance(obj, h5py.Dataset):
            sizes[name] = int(np.prod(obj.shape, dtype=np.int64)) * max(1, obj.dtype.itemsize)
            kinds[name] = (obj.dtype.kind, int(np.prod(obj.shape, dtype=np.int64)))

    try:
        with h5py.File(path, "r") as f:
            f.visititems(visit)
            matrix = "layers/counts" if "layers/counts" in f else "X"
            shape = f[matrix].attrs.get("shape") if matrix in f and isinstance(f[matrix], h5py.Group) else None
    except (OSError, KeyError, ValueError, RuntimeError) as e:
        raise ValueError("The .h5ad file could not be read: it is truncated or not an AnnData file. "
                         "Save it again with `adata.write_h5ad(...)`.") from e
    total = sum(sizes.values())
    if total > max_decoded:
        biggest = max(sizes, key=sizes.get)
        raise ValueError(f"Decoded, this .h5ad would take {total / MB:,.0f} MB ('{biggest}' alone "
                         f"{sizes[biggest] / MB:,.0f} MB); the limit is {max_decoded / MB:,.0f} MB. Store the counts "
                         "sparse (scipy CSR) or subsample cells or genes.")
    stored = kinds.get(f"{matrix}/data") or kinds.get(matrix)
    if stored is not None:
        kind, n = stored
        if kind == "c":
            raise ValueError(f"The matrix {matrix} holds complex numbers; counts must be real integers.")
        if kind not in "biuf":
            raise ValueError(f"The matrix {matrix} is not numeric; store raw integer counts.")
        if n > max_values:
            what, fix = ("non-zero values", "S") if shape is not None else ("values (cells × genes, dense)",
                                                                         "Store it sparse (scipy CSR) or s")
            raise ValueError(f"The count matrix holds {n:,} {what}; the limit is {max_values:,}. "
                             f"{fix}ubsample cells or genes.")
    return sizes


def load_h5ad(data, max_bytes: int = MAX_H5AD_BYTES):
    """Read an uploaded .h5ad into AnnData; clear errors for non-HDF5, unreadable or over-budget files
    (the budget is checked on the HDF5 headers before any array is decoded, see `h5ad_budget`)."""
    import anndata as ad

    raw = as_bytes(data)
    check_size(raw, max_bytes, ".h5ad")
    if raw[:8] != b"\x89HDF\r\n\x1a\n":
        raise ValueError("This is not an .h5ad file (no HDF5 signature). Save your data with `adata.write_h5ad(...)`.")
    with tempfile.NamedTemporaryFile(suffix=".h5ad", delete=False) as f:
        f.write(raw)
        path = f.name
    try:
        h5ad_budget(path)
        try:
            adata = ad.read_h5ad(path)
        except Exception as e:  # h5py/anndata raise many types for truncated or foreign files; their text is internal
            raise ValueError("The .h5ad file could not be read: it is truncated or not an AnnData file. "
                             "Save it again with `adata.write_h5ad(...)`.") from e
    finally:
        os.unlink(path)
    if adata.n_obs == 0:
        raise ValueError("The .h5ad file holds no cells.")
    if adata.n_vars == 0:
        raise ValueError("The .h5ad file holds no genes.")
    return adata
