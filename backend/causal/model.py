"""DCRL-style representation learner and its VAE twin (torch modules).

A CPU-sized re-implementation, not the authors' code (none is public): the weakly supervised model of
ILCM (Brehmer et al. 2022: noise encoder, heuristic intervention encoder, projection of the pair's
codes onto one intervened dimension, affine solution functions z_i = s_i(eps_i; eps_rest)) whose
decoder p(x | eps) is a conditional diffusion model in DCRL (Mamaghan et al., Entropy 2024): a
denoiser that sees the noisy observation x_t, the noise level t and the code of the clean input, and
predicts the clean input; its loss averaged over t replaces -log p(x | eps). The VAE baseline swaps
that denoiser for a Gaussian MLP decoder and keeps everything else.
"""

from __future__ import annotations

import math

import torch
from torch import nn


def mlp(i: int, o: int, width: int = 128, depth: int = 2) -> nn.Sequential:
    layers, h = [], i
    for _ in range(depth):
        layers += [nn.Linear(h, width), nn.SiLU()]
        h = width
    layers.append(nn.Linear(h, o))
    return nn.Sequential(*layers)


class ConvEncoder(nn.Module):
    """32x32 RGB -> features (for `image` observations)."""

    def __init__(self, out: int, width: int = 32):
        super().__init__()
        self.net = nn.Sequential(
            nn.Conv2d(3, width, 4, 2, 1), nn.SiLU(),            # 16
            nn.Conv2d(width, width, 4, 2, 1), nn.SiLU(),        # 8
            nn.Conv2d(width, 2 * width, 4, 2, 1), nn.SiLU(),    # 4
            nn.Flatten(), nn.Linear(2 * width * 16, 128), nn.SiLU(), nn.Linear(128, out),
        )

    def forward(self, x):
        return self.net(x)


def time_embedding(t: torch.Tensor, dim: int = 16) -> torch.Tensor:
    half = dim // 2
    freqs = torch.exp(torch.arange(half, device=t.device, dtype=t.dtype) * (-math.log(1000.0) / (half - 1)))
    a = t[:, None] * 1000.0 * freqs[None]
    return torch.cat([a.sin(), a.cos()], 1)


def alpha_bar(t: torch.Tensor) -> torch.Tensor:
    """Cosine schedule on continuous t in (0,1): fully noisy at t=1."""
    return torch.cos(0.5 * math.pi * t).pow(2).clamp(1e-4, 1.0)


class Denoiser(nn.Module):
    """x0-prediction network D(x_t, t, code) for flat observations (DCRL's conditional diffusion decoder)."""

    def __init__(self, x_dim: int, code_dim: int, width: int = 128):
        super().__init__()
        self.net = mlp(x_dim + 16 + code_dim, x_dim, width, depth=2)

    def forward(self, x_t, t, code):
        return self.net(torch.cat([x_t, time_embedding(t), code], 1))


class ImageDenoiser(nn.Module):
    """Small conv x0-predictor for 32x32 images, conditioned on (t, code) by FiLM on a bottleneck."""

    def __init__(self, code_dim: int, width: int = 32):
        super().__init__()
        self.down = nn.Sequential(nn.Conv2d(3, width, 3, 1, 1), nn.SiLU(), nn.Conv2d(width, width, 4, 2, 1), nn.SiLU(),
                                  nn.Conv2d(width, 2 * width, 4, 2, 1), nn.SiLU())  # 8x8
        self.cond = mlp(16 + code_dim, 2 * 2 * width, 128, depth=1)
        self.fromcode = nn.Linear(code_dim, 2 * width * 64)
        self.up = nn.Sequential(nn.ConvTranspose2d(4 * width, width, 4, 2, 1), nn.SiLU(),
                                nn.ConvTranspose2d(width, width, 4, 2, 1), nn.SiLU(), nn.Conv2d(width, 3, 3, 1, 1))

    def forward(self, x_t, t, code):
        h = self.down(x_t)
        g, b = self.cond(torch.cat([time_embedding(t), code], 1)).chunk(2, 1)
        h = h * (1 + g[:, :, None, None]) + b[:, :, None, None]
        c = self.fromcode(code).view(len(code), -1, 8, 8)
        return self.up(torch.cat([h, c], 1))


class ImageDecoder(nn.Module):
    def __init__(self, code_dim: int, width: int = 32):
        super().__init__()
        self.fc = nn.Sequential(nn.Linear(code_dim, 128), nn.SiLU(), nn.Linear(128, 2 * width * 64), nn.SiLU())
        self.width = width
        self.up = nn.Sequential(nn.ConvTranspose2d(2 * width, width, 4, 2, 1), nn.SiLU(),
                                nn.ConvTranspose2d(width, width, 4, 2, 1), nn.SiLU(), nn.Conv2d(width, 3, 3, 1, 1))

    def forward(self, code):
        return self.up(self.fc(code).view(len(code), 2 * self.width, 8, 8))


class Learner(nn.Module):
    """Noise encoder + decoder (diffusion or Gaussian) + intervention encoder + solution functions."""

    def __init__(self, d: int, x_dim: int, decoder: str = "diffusion", observation: str = "vector",
                 width: int = 128):
        super().__init__()
        self.d, self.x_dim, self.decoder_kind, self.observation = d, x_dim, decoder, observation
        if observation == "image":
            self.encoder = ConvEncoder(2 * d)
            self.decoder = ImageDenoiser(d) if decoder == "diffusion" else ImageDecoder(d)
        else:
            self.encoder = mlp(x_dim, 2 * d, width)
            self.decoder = Denoiser(x_dim, d, width) if decoder == "diffusion" else mlp(d, x_dim, width)
        # ILCM heuristic intervention encoder: logit_i = a + b|de_i| + c de_i^2, logit_none = 0
        self.iv = nn.Parameter(torch.tensor([-3.0, 15.0, 15.0]))
        # solution functions: (eps_rest masked, one-hot i) -> (location, log-scale) of z_i = loc + exp(ls) eps_i
        self.solution = mlp(2 * d, 2, 64)

    # -- encoder
    def encode(self, x):
        mu, logvar = self.encoder(x).chunk(2, 1)
        return mu, logvar.clamp(-12, 4)

    def intervention_posterior(self, mu1, mu2):
        delta = mu2 - mu1
        a, b, c = self.iv
        logits = a + b * delta.abs() + c * delta.pow(2)
        logits = torch.cat([torch.zeros_like(logits[:, :1]), logits], 1)
        q = torch.softmax(logits, 1) + 1e-4
        return q / q.sum(1, keepdim=True)  # (B, d+1): column 0 = no intervention

    # -- solution functions
    def _loc_logscale(self, eps_rest_masked, i):
        onehot = torch.zeros(len(eps_rest_masked), self.d, device=eps_rest_masked.device)
        onehot[:, i] = 1
        loc, ls = self.solution(torch.cat([eps_rest_masked, onehot], 1)).unbind(1)
        return loc, ls.clamp(-5, 3)

    def _stacked(self, eps_context):
        """(d*B, 2d) inputs of the solution network: eps with dim i zeroed, plus one-hot i, for every i."""
        b, d = eps_context.shape
        eye = torch.eye(d, device=eps_context.device)
        masked = (eps_context[None] * (1 - eye)[:, None, :]).reshape(d * b, d)
        onehot = eye.repeat_interleave(b, 0)
        loc, ls = self.solution(torch.cat([masked, onehot], 1)).unbind(1)
        return loc.view(d, b).T, ls.clamp(-5, 3).view(d, b).T  # (B, d) each

    def causal(self, eps):
        """z_hat_i = s_i(eps_i; eps_rest) for every i (the implicit-SCM causal variables)."""
        loc, ls = self._stacked(eps)
        return loc + ls.exp() * eps

    def solution_nll(self, eps_shared, eps2, w):
        """-log p of the intervened value under z_i = s_i(eps2_i; eps_rest) ~ N(0,1), weighted by w (B, d)."""
        loc, ls = self._stacked(eps_shared)
        zi = loc + ls.exp() * eps2
        nll = 0.5 * zi.pow(2) - ls
        return ((w * nll).sum(0) / w.sum(0).clamp_min(1.0)).sum()

    # -- decoder
    def recon_error(self, x, code, n_t: int = 2):
        """Sum-of-squares reconstruction error per example: the diffusion loss (x0 prediction averaged over
        random noise levels) for DCRL, or the Gaussian decoder's error for the VAE."""
        if self.decoder_kind != "diffusion":
            return (self.decoder(code) - x).pow(2).flatten(1).sum(1)
        reps = (n_t,) + (1,) * (x.dim() - 1)
        xr, cr = x.repeat(reps), code.repeat(n_t, 1)
        t = torch.rand(len(xr), device=x.device)
        ab = alpha_bar(t).view(-1, *([1] * (x.dim() - 1)))
        x_t = ab.sqrt() * xr + (1 - ab).sqrt() * torch.randn_like(xr)
        err = (self.decoder(x_t, t, cr) - xr).pow(2).flatten(1).sum(1)
        return err.view(n_t, len(x)).mean(0)

    @torch.no_grad()
    def reconstruct(self, code, steps: int = 20, seed: int = 0):
        """Decode codes: DDIM sampling with the denoiser (DCRL) or the decoder mean (VAE)."""
        if self.decoder_kind != "diffusion":
            return self.decoder(code)
        g = torch.Generator(device=code.device).manual_seed(int(seed))
        shape = (len(code), 3, 32, 32) if self.observation == "image" else (len(code), self.x_dim)
        x = torch.randn(shape, generator=g, device=code.device)
        ts = torch.linspace(1.0, 0.0, steps + 1, device=code.device)
        for k in range(steps):
            t, tn = ts[k].expand(len(code)), ts[k + 1]
            ab, abn = alpha_bar(ts[k]), alpha_bar(tn) if k < steps - 1 else torch.tensor(1.0)
            x0 = self.decoder(x, t, code)
            n = (x - ab.sqrt() * x0) / (1 - ab).sqrt().clamp_min(1e-4)
            x = abn.sqrt() * x0 + (1 - abn).sqrt() * n
        return x

    # -- the training objective
    def loss(self, x1, x2, beta: float = 1.0, recon_weight: float = 50.0, n_t: int = 2, sparsity: float = 0.0):
        """ILCM-style ELBO with projection onto each intervention hypothesis, averaged over q(I | x, x~)."""
        d = self.d
        mu1, lv1 = self.encode(x1)
        mu2, lv2 = self.encode(x2)
        q = self.intervention_posterior(mu1, mu2)
        mu_s, var_s = 0.5 * (mu1 + mu2), 0.5 * (lv1.exp() + lv2.exp())
        n_shared, n1, n2 = torch.randn_like(mu1), torch.randn_like(mu1), torch.randn_like(mu1)
        shared = mu_s + var_s.sqrt() * n_shared
        own1, own2 = mu1 + (0.5 * lv1).exp() * n1, mu2 + (0.5 * lv2).exp() * n2
        kl_shared = _kl(mu_s, var_s.log())          # (B, d)
        kl_own = _kl(mu1, lv1) + _kl(mu2, lv2)       # (B, d)
        masks = torch.cat([torch.zeros(1, d, device=x1.device), torch.eye(d, device=x1.device)], 0)[:, None, :]
        e1 = (masks * own1[None] + (1 - masks) * shared[None]).reshape(-1, d)   # ((d+1)*B, d)
        e2 = (masks * own2[None] + (1 - masks) * shared[None]).reshape(-1, d)
        reps = (d + 1,) + (1,) * (x1.dim() - 1)
        rec = self.recon_error(torch.cat([x1.repeat(reps), x2.repeat(reps)]), torch.cat([e1, e2]), n_t)
        rec = rec.view(2, d + 1, -1).sum(0).T                                   # (B, d+1)
        kl = ((1 - masks) * kl_shared[None] + masks * kl_own[None]).sum(2).T     # (B, d+1)
        terms = recon_weight * rec + beta * kl
        elbo_part = (q * terms).sum(1).mean()
        q_kl = (q * (q.log() + math.log(d + 1))).sum(1).mean()  # KL(q(I) || uniform prior)
        # solution functions learn from the (detached) codes of pairs with an inferred intervention
        sol = self.solution_nll(mu_s.detach(), mu2.detach(), q[:, 1:].detach())
        # atomic-intervention prior as a direct penalty (not in ILCM): the code change outside its largest
        # dimension, which is zero only when a pair's codes differ in one dimension
        da = (mu2 - mu1).abs()
        off = (da.sum(1) - da.max(1).values).mean()
        return elbo_part + q_kl + sol + sparsity * off, {"loss": float(elbo_part.detach()), "solution_nll": float(sol.detach()),
                                        "recon": float((q * rec).sum(1).mean().detach()),
                                        "q_none": float(q[:, 0].mean().detach()), "off_target": float(off.detach())}


def _kl(mu, logvar):
    return 0.5 * (mu.pow(2) + logvar.exp() - 1 - logvar)
