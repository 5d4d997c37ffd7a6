"""A shrunk RaMViD-style video U-Net (Höppe et al., TMLR 2022) for CPU budgets.

Differences from RaMViD's `UNetModel` (for speed on a few CPU cores; see assets/checkpoints/video-bouncing.md):
- 2x2 pixels folded into channels first, so the U-Net runs at 16x16 -> 8x8 -> 4x4 for 32x32 frames;
- factorised (2+1)D convolutions (3x3 spatial then 3 temporal) instead of full 3x3x3;
- time is never downsampled; joint space-time attention only at the lowest resolution;
- flag `mask_channel` (True; RaMViD: False): an extra input channel carries the per-pixel "to generate"
  mask, which makes region (rectangle) infilling possible. Without it the net tells given frames from
  the others only by their being noise-free, as in the paper.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn


def timestep_embedding(t: torch.Tensor, dim: int) -> torch.Tensor:
    half = dim // 2
    freqs = torch.exp(-math.log(10000.0) * torch.arange(half, device=t.device, dtype=torch.float32) / half)
    args = t.float()[:, None] * freqs[None]
    return torch.cat([torch.cos(args), torch.sin(args)], dim=1)


def _norm(c: int) -> nn.GroupNorm:
    return nn.GroupNorm(min(8, c), c)


def spatial(conv: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """Apply a 2D module to every frame of (B, C, T, H, W) (Conv2d is much faster than Conv3d on CPU)."""
    b, c, t, h, w = x.shape
    y = conv(x.transpose(1, 2).reshape(b * t, c, h, w))
    return y.reshape(b, t, *y.shape[1:]).transpose(1, 2)


def temporal(conv: nn.Conv1d, x: torch.Tensor) -> torch.Tensor:
    """Apply a Conv1d along time at every pixel of (B, C, T, H, W)."""
    b, c, t, h, w = x.shape
    y = conv(x.permute(0, 3, 4, 1, 2).reshape(b * h * w, c, t))
    return y.reshape(b, h, w, -1, t).permute(0, 3, 4, 1, 2)


class Conv21d(nn.Module):
    """(2+1)D convolution: spatial 3x3 then temporal 3 (padding keeps T, H, W)."""

    def __init__(self, cin: int, cout: int):
        super().__init__()
        self.spatial = nn.Conv2d(cin, cout, 3, padding=1)
        self.temporal = nn.Conv1d(cout, cout, 3, padding=1)

    def forward(self, x):
        return temporal(self.temporal, spatial(self.spatial, x))


class ResBlock(nn.Module):
    def __init__(self, cin: int, cout: int, emb_dim: int):
        super().__init__()
        self.norm1 = _norm(cin)
        self.conv1 = Conv21d(cin, cout)
        self.emb = nn.Linear(emb_dim, 2 * cout)
        self.norm2 = _norm(cout)
        self.conv2 = Conv21d(cout, cout)
        nn.init.zeros_(self.conv2.temporal.weight)
        nn.init.zeros_(self.conv2.temporal.bias)
        self.skip = nn.Conv3d(cin, cout, 1) if cin != cout else nn.Identity()

    def forward(self, x, emb):
        h = self.conv1(F.silu(self.norm1(x)))
        scale, shift = self.emb(emb)[:, :, None, None, None].chunk(2, dim=1)
        h = self.norm2(h) * (1 + scale) + shift  # scale-shift norm, as improved-diffusion
        h = self.conv2(F.silu(h))
        return self.skip(x) + h


class SpaceTimeAttention(nn.Module):
    """Full joint attention over T*H*W tokens (used only at the lowest resolution)."""

    def __init__(self, c: int, heads: int = 4):
        super().__init__()
        self.norm = _norm(c)
        self.qkv = nn.Conv3d(c, 3 * c, 1)
        self.proj = nn.Conv3d(c, c, 1)
        nn.init.zeros_(self.proj.weight)
        nn.init.zeros_(self.proj.bias)
        self.heads = heads

    def forward(self, x):
        b, c, t, h, w = x.shape
        q, k, v = self.qkv(self.norm(x)).reshape(b, 3, self.heads, c // self.heads, t * h * w).unbind(1)
        out = F.scaled_dot_product_attention(q.transpose(-1, -2), k.transpose(-1, -2), v.transpose(-1, -2))
        return x + self.proj(out.transpose(-1, -2).reshape(b, c, t, h, w))


class VideoUNet(nn.Module):
    """Input: x (B,3,T,H,W) with given pixels clean and others noisy, plus mask (B,1,T,H,W), 1 = generate.

    Output: the v-prediction (B,3,T,H,W). One diffusion time per clip. The first layer folds 2x2 pixel
    patches into channels (space-to-depth), so the U-Net runs at H/2 (four times cheaper on a CPU);
    the last layer unfolds them again.
    """

    def __init__(self, channels: int = 32, mult=(1, 2), attention: bool = True, mask_channel: bool = True,
                 out_channels: int = 3, patch: int = 2):
        super().__init__()
        self.config = {"channels": channels, "mult": list(mult), "attention": attention,
                       "mask_channel": bool(mask_channel), "out_channels": out_channels, "patch": patch}
        in_channels = 3 + int(bool(mask_channel))
        self.patch = patch
        emb_dim = channels * 4
        self.emb = nn.Sequential(nn.Linear(channels, emb_dim), nn.SiLU(), nn.Linear(emb_dim, emb_dim))
        chs = [int(channels * m) for m in mult]
        self.stem = Conv21d(in_channels * patch * patch, chs[0])
        self.down_blocks = nn.ModuleList()
        self.downs = nn.ModuleList()
        cin = chs[0]
        for i, c in enumerate(chs):
            self.down_blocks.append(ResBlock(cin, c, emb_dim))
            cin = c
            if i < len(chs) - 1:
                self.downs.append(nn.Conv2d(c, c, 3, stride=2, padding=1))
        self.mid1 = ResBlock(cin, cin, emb_dim)
        self.attn = SpaceTimeAttention(cin) if attention else nn.Identity()
        self.mid2 = ResBlock(cin, cin, emb_dim)
        self.up_blocks = nn.ModuleList()
        for i in reversed(range(len(chs))):
            self.up_blocks.append(ResBlock(cin + chs[i], chs[i], emb_dim))
            cin = chs[i]
        self.out_norm = _norm(cin)
        self.out = nn.Conv2d(cin, out_channels * patch * patch, 3, padding=1)
        nn.init.zeros_(self.out.weight)
        nn.init.zeros_(self.out.bias)

    def forward(self, x, mask, t):
        emb = self.emb(timestep_embedding(t * 1000.0, self.config["channels"]))
        if self.config["mask_channel"]:
            x = torch.cat([x, mask * 2 - 1], dim=1)
        h = spatial(nn.PixelUnshuffle(self.patch), x)
        h = self.stem(h)
        skips = []
        for i, block in enumerate(self.down_blocks):
            h = block(h, emb)
            skips.append(h)
            if i < len(self.downs):
                h = spatial(self.downs[i], h)
        h = self.mid2(self.attn(self.mid1(h, emb)), emb)
        for block in self.up_blocks:
            s = skips.pop()
            if h.shape[-1] != s.shape[-1]:
                h = F.interpolate(h, size=s.shape[2:], mode="nearest")
            h = block(torch.cat([h, s], dim=1), emb)
        h = spatial(self.out, F.silu(self.out_norm(h)))
        return spatial(nn.PixelShuffle(self.patch), h)
