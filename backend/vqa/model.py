"""The downstream VQA transformer (frozen representation tokens + question words -> answer) and the small CNN
autoencoder whose global latent is one of the representations."""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from backend.vqa.questions import ANSWERS, MAX_WORDS, WORDS


class Block(nn.Module):
    """Pre-norm transformer block that keeps its last attention weights (averaged over heads)."""

    def __init__(self, d: int, heads: int, ff: int):
        super().__init__()
        self.n1, self.n2 = nn.LayerNorm(d), nn.LayerNorm(d)
        self.attn = nn.MultiheadAttention(d, heads, batch_first=True)
        self.mlp = nn.Sequential(nn.Linear(d, ff), nn.GELU(), nn.Linear(ff, d))
        self.last_attn = None

    def forward(self, x, pad):
        h = self.n1(x)
        a, w = self.attn(h, h, h, key_padding_mask=pad, need_weights=True, average_attn_weights=True)
        self.last_attn = w.detach()
        x = x + a
        return x + self.mlp(self.n2(x))


class VQANet(nn.Module):
    """[CLS] + projected representation tokens + question words -> answer logits over ANSWERS.

    Representation features are standardised with training-set statistics (`feat_mean`, `feat_std` buffers,
    set once by `set_stats`)."""

    def __init__(self, feat_dim: int, d: int = 64, layers: int = 4, heads: int = 4, ff: int = 128):
        super().__init__()
        self.register_buffer("feat_mean", torch.zeros(feat_dim))
        self.register_buffer("feat_std", torch.ones(feat_dim))
        self.proj = nn.Sequential(nn.Linear(feat_dim, d), nn.GELU(), nn.Linear(d, d))
        self.words = nn.Embedding(len(WORDS), d)
        self.pos = nn.Parameter(torch.randn(MAX_WORDS, d) * 0.02)
        self.kind = nn.Parameter(torch.randn(3, d) * 0.02)  # cls, visual, word
        self.blocks = nn.ModuleList([Block(d, heads, ff) for _ in range(layers)])
        self.norm = nn.LayerNorm(d)
        self.head = nn.Linear(d, len(ANSWERS))

    def set_stats(self, feats: np.ndarray) -> None:
        f = feats.reshape(-1, feats.shape[-1])
        self.feat_mean.copy_(torch.from_numpy(f.mean(0)))
        self.feat_std.copy_(torch.from_numpy(np.maximum(f.std(0), 1e-3)))

    def forward(self, tokens, words):
        """tokens (B, T, F) float, words (B, L) long -> logits (B, len(ANSWERS))."""
        b, t, _ = tokens.shape
        v = self.proj((tokens - self.feat_mean) / self.feat_std) + self.kind[1]
        q = self.words(words) + self.pos[: words.shape[1]] + self.kind[2]
        x = torch.cat([self.kind[0].expand(b, 1, -1), v, q], 1)
        pad = torch.cat([torch.zeros(b, 1 + t, dtype=torch.bool, device=words.device), words == 0], 1)
        for blk in self.blocks:
            x = blk(x, pad)
        self.n_visual = t
        return self.head(self.norm(x[:, 0]))

    def token_attention(self) -> np.ndarray:
        """(B, T): the last forward's attention of [CLS] over the representation tokens in the last block."""
        w = self.blocks[-1].last_attn[:, 0, 1:1 + self.n_visual]
        return w.float().cpu().numpy()


class Autoencoder(nn.Module):
    """A CNN autoencoder with a 64-d global latent (32x32 scenes): the non-object-centric comparison."""

    def __init__(self, latent: int = 64, ch: int = 32):
        super().__init__()
        self.enc = nn.Sequential(nn.Conv2d(3, ch, 4, 2, 1), nn.ReLU(), nn.Conv2d(ch, ch, 4, 2, 1), nn.ReLU(),
                                 nn.Conv2d(ch, ch * 2, 4, 2, 1), nn.ReLU(), nn.Flatten(), nn.Linear(ch * 32, latent))
        self.dec_in = nn.Linear(latent, ch * 32)
        self.dec = nn.Sequential(nn.ReLU(), nn.ConvTranspose2d(ch * 2, ch, 4, 2, 1), nn.ReLU(),
                                 nn.ConvTranspose2d(ch, ch, 4, 2, 1), nn.ReLU(), nn.ConvTranspose2d(ch, 3, 4, 2, 1))
        self.ch = ch

    def forward(self, x):
        z = self.enc(x)
        return self.dec(self.dec_in(z).reshape(len(x), self.ch * 2, 4, 4)), z

    @torch.inference_mode()
    def latents(self, images: np.ndarray) -> np.ndarray:
        x = torch.from_numpy(np.asarray(images)).permute(0, 3, 1, 2).float().div(127.5).sub(1)
        return np.concatenate([self.enc(x[s:s + 512]).numpy() for s in range(0, len(x), 512)]).astype(np.float32)


def train_autoencoder(images: np.ndarray, steps: int, seed: int = 0, batch: int = 64, lr: float = 2e-3) -> Autoencoder:
    """Fit the autoencoder (MSE, AdamW, cosine schedule) on uint8 images; seeded."""
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    ae = Autoencoder()
    opt = torch.optim.AdamW(ae.parameters(), lr=lr)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, lr, total_steps=max(1, steps))
    x_all = torch.from_numpy(np.asarray(images)).permute(0, 3, 1, 2).float().div(127.5).sub(1)
    for _ in range(steps):
        x = x_all[rng.integers(0, len(x_all), batch)]
        loss = ((ae(x)[0] - x) ** 2).mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
    ae.final_mse = float(loss.detach())
    return ae.eval()
