"""The trained model: `load_model(name)` and the model's `infill` / `infill_samples` / `generate` calls."""

from __future__ import annotations

import numpy as np

from backend.core import CheckpointError, as_progress, cached, get_device, load_checkpoint
from backend.core.cache import LockedModel
from backend.video.metrics import generated_mask

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


def resize_frames(frames: np.ndarray, h: int, w: int, nearest: bool = False) -> np.ndarray:
    import cv2

    if frames.shape[1:3] == (h, w):
        return frames
    shrink = frames.shape[1] * frames.shape[2] > h * w
    interp = cv2.INTER_NEAREST if nearest else (cv2.INTER_AREA if shrink else cv2.INTER_LINEAR)
    return np.stack([cv2.resize(f, (w, h), interpolation=interp) for f in frames])


class VideoModel(LockedModel):
    """A trained random-mask video diffusion model (EMA weights) with RaMViD's conditioning sampler."""

    def __init__(self, net, num_frames: int, resolution: int, card: dict | None = None, device=None,
                 evaluation: dict | None = None):
        super().__init__()
        self.net = net.eval()
        self.num_frames = int(num_frames)
        self.resolution = int(resolution)
        self.card = card or {}
        self.evaluation = evaluation or {}  # the checkpoint's held-out detail (per-frame PSNR curves)
        self.device = device

    # ------------------------------------------------------------ validation
    def check_clip(self, clip) -> np.ndarray:
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

    def checked_mask(self, known, shape, region_mask=None) -> np.ndarray:
        """Bool (T, H, W): True = pixel to generate; raises ValueError for an empty or full mask."""
        T, H, W = shape[:3]
        known = np.asarray(known, bool).reshape(-1)
        if known.shape[0] != T:
            raise ValueError(f"`known` has {known.shape[0]} entries but the clip has {T} frames.")
        if region_mask is not None and np.shape(region_mask) != (T, H, W):
            raise ValueError(f"The region mask has shape {np.shape(region_mask)}; it must be (T, H, W) = {(T, H, W)}.")
        if region_mask is not None and np.any(region_mask) and not self.net.config.get("mask_channel", True):
            raise ValueError("This model has no mask channel (RaMViD's whole-frame conditioning), so it cannot "
                             "regenerate a rectangle: leave the rectangle out.")
        gen = generated_mask(known, shape, region_mask)
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

        clip = self.check_clip(clip)
        T, H, W = clip.shape[:3]
        gen = self.checked_mask(known, clip.shape, region_mask)
        if not 1 <= int(n_samples) <= 16:
            raise ValueError("The number of samples must be between 1 and 16.")
        R = self.resolution
        small = resize_frames(clip, R, R)
        gsmall = resize_frames(gen.astype(np.uint8), R, R, nearest=True).astype(bool)
        if H != R or W != R:  # a generated region must stay generated after downscaling
            import cv2

            grown = np.stack([cv2.resize(g.astype(np.uint8), (R, R), interpolation=cv2.INTER_AREA) > 0
                              for g in gen.astype(np.float32)])
            gsmall = gsmall | grown
            if gsmall.all():
                gsmall = resize_frames(gen.astype(np.uint8), R, R, nearest=True).astype(bool)
        x0 = to_tensor(small[None], self.device).expand(int(n_samples), -1, -1, -1, -1)
        mask = torch.as_tensor(gsmall, dtype=torch.float32, device=self.device)[None, None]
        mask = mask.expand(int(n_samples), -1, -1, -1, -1)
        out = to_uint8(self._run(x0, mask, steps, eta, resample, seed, as_progress(progress)))
        if (H, W) != (R, R):
            out = np.stack([resize_frames(o, H, W) for o in out])
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
                     mask_channel=config.get("mask_channel", True), patch=config.get("patch", 2))


@cached
def _load(checkpoint: str, device_name: str, directory: str | None) -> VideoModel:
    import torch

    payload, card = load_checkpoint(checkpoint, map_location="cpu", directory=directory)
    try:
        net = build_net(payload["config"])
        net.load_state_dict(payload["ema"])
        num_frames, resolution = payload["num_frames"], payload["resolution"]
    except (KeyError, RuntimeError) as e:
        raise CheckpointError(f"Checkpoint {checkpoint}.pt does not match the video model ({e}); "
                              f"retrain with `python -m backend.train {checkpoint}`.") from e
    dev = torch.device(device_name)
    return VideoModel(net.to(dev), num_frames, resolution, card, dev, payload.get("evaluation"))


def load_model(name: str = "bouncing", device=None, directory=None) -> VideoModel:
    """The shipped model `name` ('bouncing'), cached once per process and device; `directory` reads the
    checkpoint from another folder than the shipped one (e.g. a training run's output)."""
    if name not in MODELS:
        raise ValueError(f"Unknown video model {name!r}; available: {', '.join(MODELS)}.")
    return _load(MODELS[name], str(get_device(device)), None if directory is None else str(directory))
