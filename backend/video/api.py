"""Public face of the video domain: `load_model(name)` and the model's `infill` / `generate` calls."""

from __future__ import annotations

import numpy as np

from backend.core import CheckpointError, as_progress, cached, get_device, load_checkpoint
from backend.core.cache import LockedModel

MODELS = {"bouncing": "video-bouncing"}


def to_tensor(clips: np.ndarray, device=None):
    """uint8 (N, T, H, W, 3) -> float (N, 3, T, H, W) in [-1, 1]."""
    import torch

    x = torch.as_tensor(np.ascontiguousarray(clips)).to(device=device)
    return x.permute(0, 4, 1, 2, 3).float() / 127.5 - 1.0


def to_uint8(x) -> np.ndarray:
    """float (N, 3, T, H, W) in [-1, 1] -> uint8 (N, T, H, W, 3)."""
    a = ((x.clamp(-1, 1) + 1.0) * 127.5).round().to("cpu").permute(0, 2, 3, 4, 1).numpy()
    return a.astype(np.uint8)


def _resize_frames(frames: np.ndarray, h: int, w: int, nearest: bool = False) -> np.ndarray:
    import cv2

    if frames.shape[1:3] == (h, w):
        return frames
    shrink = frames.shape[1] * frames.shape[2] > h * w
    interp = cv2.INTER_NEAREST if nearest else (cv2.INTER_AREA if shrink else cv2.INTER_LINEAR)
    return np.stack([cv2.resize(f, (w, h), interpolation=interp) for f in frames])


class VideoModel(LockedModel):
    """A trained random-mask video diffusion model (EMA weights) with RaMViD's conditioning sampler."""

    def __init__(self, net, num_frames: int, resolution: int, card: dict | None = None, device=None,
                 example: dict | None = None):
        super().__init__()
        self.example = example  # the page's default sample, precomputed by the trainer (or None)
        self.net = net.eval()
        self.num_frames = int(num_frames)
        self.resolution = int(resolution)
        self.card = card or {}
        self.device = device

    # ------------------------------------------------------------ validation
    def _check_clip(self, clip) -> np.ndarray:
        clip = np.asarray(clip)
        if clip.ndim == 3:  # grayscale (T, H, W)
            clip = np.repeat(clip[..., None], 3, axis=-1)
        if clip.ndim != 4 or clip.shape[-1] not in (1, 3, 4):
            raise ValueError(f"A clip must be an array (T, H, W, 3); got shape {clip.shape}.")
        if clip.shape[-1] == 1:
            clip = np.repeat(clip, 3, axis=-1)
        elif clip.shape[-1] == 4:
            clip = clip[..., :3]
        if clip.dtype != np.uint8:
            clip = np.clip(np.rint(clip.astype(np.float64)), 0, 255).astype(np.uint8)
        if clip.shape[0] != self.num_frames:
            raise ValueError(f"The clip has {clip.shape[0]} frames; this model works on exactly {self.num_frames}. "
                             f"Choose a range of {self.num_frames} frames.")
        if min(clip.shape[1:3]) < 2:
            raise ValueError(f"Frames of {clip.shape[1]}×{clip.shape[2]} pixels are too small.")
        return clip

    def generated_mask(self, known, shape, region_mask=None) -> np.ndarray:
        """Bool (T, H, W): True = pixel to generate; raises ValueError for an empty or full mask."""
        T, H, W = shape[:3]
        known = np.asarray(known, bool).reshape(-1)
        if known.shape[0] != T:
            raise ValueError(f"`known` has {known.shape[0]} entries but the clip has {T} frames.")
        gen = np.repeat(~known[:, None, None], H, 1).repeat(W, 2)
        if region_mask is not None:
            rm = np.asarray(region_mask, bool)
            if rm.shape != (T, H, W):
                raise ValueError(f"The region mask has shape {rm.shape}; it must be (T, H, W) = {(T, H, W)}.")
            gen = gen | rm
        if not gen.any():
            raise ValueError("Every frame is given, so there is nothing to generate: mark at least one frame "
                             "(or a region) as 'to generate'.")
        if gen.all():
            raise ValueError("No frame or pixel is given: mark at least one frame as given, or use "
                             "unconditional generation instead.")
        return gen

    # ------------------------------------------------------------ inference
    def _run(self, x0, mask, steps, eta, resample, seed, progress):
        import torch

        from backend.video.diffusion import ddim_sample

        if not 1 <= int(steps) <= 1000:
            raise ValueError("Steps must be between 1 and 1000.")
        if not 0.0 <= float(eta) <= 1.0:
            raise ValueError("η must be between 0 (deterministic DDIM) and 1 (ancestral).")
        g = torch.Generator().manual_seed(int(seed))
        with self.lock, torch.inference_mode():
            return ddim_sample(self.net, x0, mask, steps=steps, eta=eta, resample=resample, generator=g,
                               progress=progress)

    def infill_samples(self, clip, known, n_samples: int = 1, steps: int = 25, seed: int = 0,
                       region_mask=None, eta: float = 0.0, resample: int = 1, progress=None) -> np.ndarray:
        """`n_samples` infillings uint8 (N, T, H, W, 3); every given pixel equals the input exactly."""
        import torch

        clip = self._check_clip(clip)
        T, H, W = clip.shape[:3]
        gen = self.generated_mask(known, clip.shape, region_mask)
        if not 1 <= int(n_samples) <= 16:
            raise ValueError("The number of samples must be between 1 and 16.")
        R = self.resolution
        small = _resize_frames(clip, R, R)
        gsmall = _resize_frames(gen.astype(np.uint8), R, R, nearest=True).astype(bool)
        if H != R or W != R:  # a generated region must stay generated after downscaling
            import cv2

            grown = np.stack([cv2.resize(g.astype(np.uint8), (R, R), interpolation=cv2.INTER_AREA) > 0
                              for g in gen.astype(np.float32)])
            gsmall = gsmall | grown
            if gsmall.all():
                gsmall = _resize_frames(gen.astype(np.uint8), R, R, nearest=True).astype(bool)
        x0 = to_tensor(small[None], self.device).expand(int(n_samples), -1, -1, -1, -1)
        mask = torch.as_tensor(gsmall, dtype=torch.float32, device=self.device)[None, None]
        mask = mask.expand(int(n_samples), -1, -1, -1, -1)
        out = to_uint8(self._run(x0, mask, steps, eta, resample, seed, as_progress(progress)))
        if (H, W) != (R, R):
            out = np.stack([_resize_frames(o, H, W) for o in out])
        return np.where(gen[None, ..., None], out, clip[None]).astype(np.uint8)

    def infill(self, clip, known, steps: int = 25, seed: int = 0, region_mask=None, eta: float = 0.0,
               resample: int = 1, progress=None) -> np.ndarray:
        """Fill the frames (and region pixels) not given; uint8 (T, H, W, 3), given pixels unchanged."""
        return self.infill_samples(clip, known, 1, steps=steps, seed=seed, region_mask=region_mask, eta=eta,
                                   resample=resample, progress=progress)[0]

    def generate(self, n: int = 1, steps: int = 25, seed: int = 0, eta: float = 0.0, progress=None) -> np.ndarray:
        """Unconditional clips uint8 (n, T, R, R, 3) (the same weights, nothing given)."""
        import torch

        T, R = self.num_frames, self.resolution
        if not 1 <= int(n) <= 16:
            raise ValueError("The number of samples must be between 1 and 16.")
        x0 = torch.zeros(int(n), 3, T, R, R, device=self.device)
        mask = torch.ones(int(n), 1, T, R, R, device=self.device)
        return to_uint8(self._run(x0, mask, steps, eta, 1, seed, as_progress(progress)))

    def batch_infill(self, clips: np.ndarray, masks: np.ndarray, steps: int = 25, seed: int = 0, eta: float = 0.0,
                     resample: int = 1, progress=None) -> np.ndarray:
        """Infill many model-sized clips (N, T, R, R, 3) with their own masks (N, T, R, R), True = generate."""
        import torch

        x0 = to_tensor(clips, self.device)
        m = torch.as_tensor(np.asarray(masks, np.float32), device=self.device)[:, None]
        out = to_uint8(self._run(x0, m, steps, eta, resample, seed, as_progress(progress)))
        return np.where(np.asarray(masks, bool)[..., None], out, clips).astype(np.uint8)


def build_net(config: dict):
    from backend.video.model import VideoUNet

    return VideoUNet(channels=config["channels"], mult=tuple(config["mult"]), attention=config["attention"],
                     patch=config.get("patch", 2))


@cached
def _load(checkpoint: str, device_name: str) -> VideoModel:
    import torch

    payload, card = load_checkpoint(checkpoint, map_location="cpu")
    try:
        net = build_net(payload["config"])
        net.load_state_dict(payload["ema"])
    except (KeyError, RuntimeError) as e:
        raise CheckpointError(f"Checkpoint {checkpoint}.pt does not match the video model ({e}); "
                              f"retrain with `python -m backend.train {checkpoint}`.") from e
    dev = torch.device(device_name)
    example = payload.get("example")
    if example is not None:
        example = {**example, "sample": np.asarray(example["sample"].numpy(), np.uint8)}
    return VideoModel(net.to(dev), payload["num_frames"], payload["resolution"], card, dev, example)


def load_model(name: str = "bouncing", device=None) -> VideoModel:
    """The shipped model `name` ('bouncing'), cached once per process and device."""
    if name not in MODELS:
        raise ValueError(f"Unknown video model {name!r}; available: {', '.join(MODELS)}.")
    return _load(MODELS[name], str(get_device(device)))


# ---------------------------------------------------------------- page helpers (no torch)
PRESETS = {
    "upsampling": "Frame-rate upsampling: every 4th frame given",
    "prediction": "Prediction: the first 4 frames given",
    "infilling": "Infilling: the first 2 and last 2 frames given",
    "unconditional": "Unconditional: nothing given",
}


def preset_known(preset: str, num_frames: int) -> np.ndarray:
    """Bool (T,) of given frames for a task preset."""
    t = np.arange(int(num_frames))
    if preset == "upsampling":
        return t % 4 == 0
    if preset == "prediction":
        return t < min(4, num_frames - 1)
    if preset == "infilling":
        k = 2 if num_frames > 4 else 1
        return (t < k) | (t >= num_frames - k)
    if preset == "unconditional":
        return np.zeros(num_frames, bool)
    raise ValueError(f"Unknown preset {preset!r}; choose one of {', '.join(PRESETS)}.")


def box_mask(num_frames: int, size: int, frames, x_range, y_range) -> np.ndarray:
    """Bool (T, size, size): True inside the rectangle [x0, x1) x [y0, y1) on the chosen frames."""
    m = np.zeros((int(num_frames), int(size), int(size)), bool)
    x0, x1 = sorted(int(v) for v in x_range)
    y0, y1 = sorted(int(v) for v in y_range)
    if x1 <= x0 or y1 <= y0:
        raise ValueError("The rectangle is empty: give it a width and a height of at least one pixel.")
    for f in frames:
        if not 0 <= int(f) < num_frames:
            raise ValueError(f"Frame {f} does not exist; frames are 0 to {num_frames - 1}.")
        m[int(f), y0:y1, x0:x1] = True
    return m


def fit_clip(frames: np.ndarray, num_frames: int, resolution: int) -> tuple[np.ndarray, str]:
    """Centre-crop frames (T, H, W, 3) to a square, resize to the model and hold the last frame if short.

    Returns the clip (num_frames, R, R, 3) and a note describing what was done (empty if nothing).
    """
    import cv2

    frames = np.asarray(frames)
    if frames.ndim == 3:
        frames = np.repeat(frames[..., None], 3, -1)
    if frames.ndim != 4 or len(frames) == 0:
        raise ValueError(f"A video must be frames (T, H, W, 3); got shape {frames.shape}.")
    notes = []
    T, H, W = frames.shape[:3]
    s = min(H, W)
    if H != W:
        y, x = (H - s) // 2, (W - s) // 2
        frames = frames[:, y:y + s, x:x + s]
        notes.append(f"centre-cropped {W}×{H} to {s}×{s}")
    if s != resolution:
        interp = cv2.INTER_AREA if s > resolution else cv2.INTER_LINEAR
        frames = np.stack([cv2.resize(np.ascontiguousarray(f), (resolution, resolution), interpolation=interp)
                           for f in frames])
        notes.append(f"resized to {resolution}×{resolution}")
    if T < num_frames:
        frames = np.concatenate([frames, np.repeat(frames[-1:], num_frames - T, 0)])
        notes.append(f"only {T} frames in the range, so the last one is held for {num_frames - T} more")
    return np.ascontiguousarray(frames[:num_frames]).astype(np.uint8), "; ".join(notes)


def clip_from_upload(data, start: int = 0, num_frames: int = 12, resolution: int = 32) -> tuple[np.ndarray, str]:
    """Read frames [start, start + num_frames) of an uploaded video and fit them to the model.

    Bad files (not a video, truncated, one frame, too large) raise ValueError with a clear sentence.
    """
    from backend.core.uploads import load_video

    if int(start) < 0:
        raise ValueError("The first frame must be 0 or later.")
    try:
        frames = load_video(data, start=int(start), max_frames=int(num_frames), min_frames=2, max_side=1024)
    except ValueError as e:
        if int(start) > 0 and "readable frame" in str(e):
            raise ValueError(f"{e} Starting at frame {start} leaves too few frames: choose an earlier start.") from e
        raise
    return fit_clip(frames, num_frames, resolution)
