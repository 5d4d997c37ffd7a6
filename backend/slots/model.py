"""Slot Attention autoencoder (Locatello et al., NeurIPS 2020), small-scene configuration.

CNN encoder (conv5 x L, "same" padding) + additive position embedding -> LayerNorm + MLP -> Slot
Attention (softmax over slots, weighted-mean update, GRU + residual MLP, reparameterised Gaussian slot
init `mu + exp(log_sigma) * eps`) -> spatial broadcast decoder (each slot decoded to RGB + a mask
logit; masks softmaxed over slots and alpha-composited). As in addtt/object-centric-library, the
inputs are scaled to [-1, 1] and the loss is a plain reconstruction MSE.
"""

from __future__ import annotations

import math

import torch
from torch import nn

DEFAULT_CONFIG = {
    "resolution": 32,
    "num_slots": 5,
    "iters": 3,
    "enc_ch": 32,
    "enc_layers": 4,
    "slot_dim": 64,
    "mlp_hidden": 128,
    "dec_ch": 32,
    "dec_init": 8,  # broadcast grid of the decoder; < resolution means stride-2 transposed convs up
    "detach_last": False,  # True: gradients through the last slot iteration only (Chang et al. 2022)
    "enc_kernel": 5,  # encoder conv kernel size
    "dec_kernel": 5,  # 1 with dec_init == resolution: per-pixel MLP decoder of dec_layers hidden layers
    "dec_layers": 3,
    "qkv_bias": False,  # bias terms in the k/q/v projections (reported crucial in lucidrains/slot-attention#2)
    "cosine_attn": 0.0,  # > 0: attention logits = this * cos(k, q) (fixed temperature), so they cannot shrink to 0
    "slot_init": "shared",  # "shared": one Gaussian for all slots; "per_slot": a learned mean per slot (+ noise)
    "dec_refine": 0,  # residual conv3 blocks at full resolution before the decoder's output conv
    "dec_refine_ch": 32,  # hidden channels of those blocks
}


class RefineBlock(nn.Module):
    """x + conv3(relu(conv3(relu(x)))) with the second conv zero-initialised, so a block added to a trained
    decoder starts as the identity (the decoder is grown without changing what it draws)."""

    def __init__(self, ch: int, hidden: int):
        super().__init__()
        self.conv1 = nn.Conv2d(ch, hidden, 3, padding=1)
        self.conv2 = nn.Conv2d(hidden, ch, 3, padding=1)

    def forward(self, x):
        return x + self.conv2(torch.relu(self.conv1(torch.relu(x))))


def pos_grid(h: int, w: int, device=None) -> torch.Tensor:
    """(1, 4, h, w) grid [y, x, 1-y, 1-x] in [0, 1]."""
    ys = torch.linspace(0, 1, h, device=device)
    xs = torch.linspace(0, 1, w, device=device)
    y, x = torch.meshgrid(ys, xs, indexing="ij")
    return torch.stack([y, x, 1 - y, 1 - x])[None]


class SoftPositionEmbed(nn.Module):
    def __init__(self, ch: int):
        super().__init__()
        self.proj = nn.Conv2d(4, ch, 1)

    def forward(self, x):
        return x + self.proj(pos_grid(x.shape[2], x.shape[3], x.device))


class SlotAttention(nn.Module):
    def __init__(self, in_dim: int, dim: int = 64, hidden: int = 128, eps: float = 1e-8, per_slot: int = 0,
                 cosine: float = 0.0, bias: bool = False):
        super().__init__()
        self.cosine = float(cosine)
        self.dim, self.eps, self.scale = dim, eps, dim ** -0.5
        self.norm_in = nn.LayerNorm(in_dim)
        self.norm_slots = nn.LayerNorm(dim)
        self.norm_mlp = nn.LayerNorm(dim)
        self.to_k = nn.Linear(in_dim, dim, bias=bias)
        self.to_v = nn.Linear(in_dim, dim, bias=bias)
        self.to_q = nn.Linear(dim, dim, bias=bias)
        self.gru = nn.GRUCell(dim, dim)
        self.mlp = nn.Sequential(nn.Linear(dim, hidden), nn.ReLU(), nn.Linear(hidden, dim))
        lim = math.sqrt(6.0 / (1 + dim))
        self.mu = nn.Parameter(torch.empty(1, max(1, per_slot), dim).uniform_(-lim, lim))
        self.log_sigma = nn.Parameter(torch.empty(1, 1, dim).uniform_(-lim, lim))
        nn.init.zeros_(self.gru.bias_ih)
        nn.init.zeros_(self.gru.bias_hh)
        nn.init.orthogonal_(self.gru.weight_hh)

    def init_means(self, num_slots: int) -> torch.Tensor:
        """(1, K, D) means of the slot initialisation. With learned per-slot means and K different from the
        number trained, the first min(K, K_train) means are used and extra slots start at their average."""
        m = self.mu
        if m.shape[1] == 1:
            return m.expand(1, num_slots, -1)
        if num_slots <= m.shape[1]:
            return m[:, :num_slots]
        extra = m.mean(1, keepdim=True).expand(1, num_slots - m.shape[1], -1)
        return torch.cat([m, extra], 1)

    def forward(self, inputs, num_slots: int, iters: int, noise: torch.Tensor | None = None,
                detach_last: bool = False):
        b = inputs.shape[0]
        x = self.norm_in(inputs)
        k, v = self.to_k(x), self.to_v(x)
        if noise is None:
            noise = torch.randn(b, num_slots, self.dim, device=inputs.device, dtype=inputs.dtype)
        init = slots = self.init_means(num_slots) + self.log_sigma.exp() * noise  # reparameterised
        attn = None
        for it in range(iters):
            if detach_last and it == iters - 1 and iters > 1:
                # first-order implicit differentiation (Chang et al., NeurIPS 2022): backpropagate
                # through the last iteration only; the init gets the identity as its Jacobian
                slots = slots.detach() + init - init.detach()
            prev = slots
            q = self.to_q(self.norm_slots(slots))
            if self.cosine > 0:
                logits = torch.einsum("bnd,bkd->bnk", nn.functional.normalize(k, dim=-1),
                                      nn.functional.normalize(q, dim=-1)) * self.cosine
            else:
                logits = torch.einsum("bnd,bkd->bnk", k, q) * self.scale
            attn = logits.softmax(dim=-1) + self.eps  # slots compete for each input position
            w = attn / attn.sum(dim=1, keepdim=True)  # weighted mean over positions
            upd = torch.einsum("bnk,bnd->bkd", w, v)
            slots = self.gru(upd.reshape(-1, self.dim), prev.reshape(-1, self.dim)).reshape(b, num_slots, self.dim)
            slots = slots + self.mlp(self.norm_mlp(slots))
        return slots, attn


class SlotAttentionAE(nn.Module):
    def __init__(self, config: dict | None = None):
        super().__init__()
        self.config = cfg = {**DEFAULT_CONFIG, **(config or {})}
        r, c = cfg["resolution"], cfg["enc_ch"]
        layers, ch_in = [], 3
        ks = int(cfg["enc_kernel"])
        for _ in range(cfg["enc_layers"]):
            layers += [nn.Conv2d(ch_in, c, ks, padding=ks // 2), nn.ReLU()]
            ch_in = c
        self.encoder = nn.Sequential(*layers)
        self.enc_pos = SoftPositionEmbed(c)
        self.enc_mlp = nn.Sequential(nn.LayerNorm(c), nn.Linear(c, c), nn.ReLU(), nn.Linear(c, c))
        d = cfg["slot_dim"]
        per_slot = cfg["num_slots"] if cfg["slot_init"] == "per_slot" else 0
        self.slot_attention = SlotAttention(c, d, cfg["mlp_hidden"], per_slot=per_slot,
                                            cosine=cfg["cosine_attn"], bias=cfg["qkv_bias"])
        self.dec_pos = SoftPositionEmbed(d)
        dc, g = cfg["dec_ch"], cfg["dec_init"]
        n_up = int(round(math.log2(r / g)))
        if g * 2 ** n_up != r:
            raise ValueError(f"dec_init {g} must be resolution / 2^k (resolution {r}).")
        dec, ch_in = [], d
        for _ in range(n_up):
            dec += [nn.ConvTranspose2d(ch_in, dc, 5, stride=2, padding=2, output_padding=1), nn.ReLU()]
            ch_in = dc
        if n_up == 0 and cfg["dec_kernel"] == 1:
            # full-resolution per-pixel MLP decoder: a weak decoder that can draw one object per slot easily but
            # not a whole scene, which pushes the slots to split the scene (cheap: 1x1 convs only)
            for _ in range(cfg["dec_layers"]):
                dec += [nn.Conv2d(ch_in, dc, 1), nn.ReLU()]
                ch_in = dc
            dec += [nn.Conv2d(ch_in, 4, 1)]
        else:
            if n_up == 0:
                dec += [nn.Conv2d(ch_in, dc, 5, padding=2), nn.ReLU()]
                ch_in = dc
            dec += [nn.Conv2d(ch_in, 4, 3, padding=1)]
        self.decoder = nn.Sequential(*dec)
        self.refine = nn.ModuleList([RefineBlock(ch_in, int(cfg["dec_refine_ch"])) for _ in range(cfg["dec_refine"])])
        for m in self.modules():
            if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear)):
                nn.init.xavier_uniform_(m.weight)
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
        for blk in self.refine:
            nn.init.zeros_(blk.conv2.weight)

    @property
    def resolution(self) -> int:
        return int(self.config["resolution"])

    def encode(self, x):
        """x: (B, 3, R, R) in [-1, 1] -> (B, R*R, C) features."""
        h = self.enc_pos(self.encoder(x))
        h = h.flatten(2).transpose(1, 2)
        return self.enc_mlp(h)

    def decode(self, slots):
        b, k, d = slots.shape
        g = self.config["dec_init"]
        z = slots.reshape(b * k, d, 1, 1).expand(-1, -1, g, g)
        h = self.decoder[:-1](self.dec_pos(z))
        for blk in self.refine:
            h = blk(h)
        out = self.decoder[-1](h)
        r = out.shape[-1]
        out = out.reshape(b, k, 4, r, r)
        rgbs, logits = out[:, :, :3], out[:, :, 3:]
        masks = logits.softmax(dim=1)
        recon = (rgbs * masks).sum(1)
        return recon, rgbs, masks[:, :, 0]

    def forward(self, x, num_slots: int | None = None, iters: int | None = None, noise=None):
        """x in [-1,1] -> dict(recon (B,3,R,R), rgbs (B,K,3,R,R), masks (B,K,R,R), slots, attn (B,K,R,R))."""
        k = num_slots or self.config["num_slots"]
        feats = self.encode(x)
        detach = bool(self.config.get("detach_last")) and self.training
        slots, attn = self.slot_attention(feats, k, iters or self.config["iters"], noise, detach)
        recon, rgbs, masks = self.decode(slots)
        r = x.shape[-1]
        attn = attn.transpose(1, 2).reshape(x.shape[0], k, r, r)
        return {"recon": recon, "rgbs": rgbs, "masks": masks, "slots": slots, "attn": attn}
