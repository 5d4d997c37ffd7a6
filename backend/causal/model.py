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


LAMBDA_MIN, LAMBDA_MAX = -10.0, 10.0  # log-SNR range of the diffusion decoder (alpha_bar = sigmoid(lambda))


def lam_to_t(lam: torch.Tensor) -> torch.Tensor:
    """The denoiser's time input: t in (0,1), 1 = noisiest, linear in the log-SNR."""
    return (LAMBDA_MAX - lam) / (LAMBDA_MAX - LAMBDA_MIN)


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
        if decoder != "diffusion":  # the Gaussian decoder's log-variance (only where it is used: DDP needs that)
            self.log_var = nn.Parameter(torch.tensor(0.0))

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

    def intervened_log_prior(self, context, eps2):
        """log p(e~_i | e_rest, I={i}) for every i (B, d): the intervened causal value z~_i = s_i(e~_i; e_rest)
        is N(0,1) (ILCM's intervention distribution), so the density is N(s_i; 0, 1) |ds_i/de~_i| with the
        affine s_i = loc_i(e_rest) + exp(ls_i(e_rest)) e~_i."""
        loc, ls = self._stacked(context)
        zi = loc + ls.exp() * eps2
        return -0.5 * zi.pow(2) - 0.5 * math.log(2 * math.pi) + ls

    def log_prior(self, e1, e2, target: int):
        """log p(e, e~ | I) of ILCM's noise prior for one hypothesis (target -1: no intervention, e~ = e):
        every e_j ~ N(0,1); the intervened e~_i has the solution-function density; the others equal e."""
        out = (-0.5 * e1.pow(2) - 0.5 * math.log(2 * math.pi)).sum(1)
        if target >= 0:
            out = out + self.intervened_log_prior(e1, e2)[:, target]
        return out

    # -- decoder
    def recon_error(self, x, code, n_t: int = 2):
        """Per-example -log p(x | code) up to a parameter-free constant. VAE: Gaussian decoder with a learned
        scalar variance. DCRL: the continuous-time diffusion ELBO (Kingma et al. 2021) with the log-SNR
        lambda importance-sampled uniformly on [LAMBDA_MIN, LAMBDA_MAX]:
        0.5 (LAMBDA_MAX - LAMBDA_MIN) E_lambda ||n - n_hat(x_lambda, lambda, code)||^2 (n_t samples of lambda)."""
        if self.decoder_kind != "diffusion":
            dim = x[0].numel()
            return 0.5 * (self.decoder(code) - x).pow(2).flatten(1).sum(1) / self.log_var.clamp(-9, 5).exp() + 0.5 * dim * (
                self.log_var.clamp(-9, 5) + math.log(2 * math.pi))
        reps = (n_t,) + (1,) * (x.dim() - 1)
        xr, cr = x.repeat(reps), code.repeat(n_t, 1)
        lam = LAMBDA_MIN + (LAMBDA_MAX - LAMBDA_MIN) * torch.rand(len(xr), device=x.device)
        ab = torch.sigmoid(lam).view(-1, *([1] * (x.dim() - 1)))
        n = torch.randn_like(xr)
        x_t = ab.sqrt() * xr + (1 - ab).sqrt() * n
        err = (self.decoder(x_t, lam_to_t(lam), cr) - n).pow(2).flatten(1).sum(1)
        return 0.5 * (LAMBDA_MAX - LAMBDA_MIN) * err.view(n_t, len(x)).mean(0)

    @torch.no_grad()
    def reconstruct(self, code, steps: int = 20, seed: int = 0):
        """Decode codes: DDIM sampling with the noise predictor (DCRL) or the decoder mean (VAE)."""
        if self.decoder_kind != "diffusion":
            return self.decoder(code)
        g = torch.Generator(device=code.device).manual_seed(int(seed))
        shape = (len(code), 3, 32, 32) if self.observation == "image" else (len(code), self.x_dim)
        x = torch.randn(shape, generator=g, device=code.device)
        lams = torch.linspace(LAMBDA_MIN, LAMBDA_MAX, steps + 1, device=code.device)
        for k in range(steps):
            lam = lams[k].expand(len(code))
            ab, abn = torch.sigmoid(lams[k]), torch.sigmoid(lams[k + 1]) if k < steps - 1 else torch.tensor(1.0)
            n = self.decoder(x, lam_to_t(lam), code)
            x0 = (x - (1 - ab).sqrt() * n) / ab.sqrt()
            x = abn.sqrt() * x0 + (1 - abn).sqrt() * n
        return x

    # -- the training objective
    def loss(self, x1, x2, beta: float = 1.0, n_t: int = 2, sparsity: float = 0.0):
        """ILCM's negative ELBO with the solution functions inside the prior, averaged over q(I | x, x~):
        sum_I q(I) [-log p(x|e) - log p(x~|e~) - beta (log p(e, e~|I) + H(q(e, e~|I)))] + KL(q(I) || p(I)),
        where q(e, e~|I) ties the non-intervened dimensions of the pair (ILCM's projection). `sparsity` > 0
        adds an ablation penalty (not in ILCM) on the code change outside each pair's largest dimension."""
        d = self.d
        mu1, lv1 = self.encode(x1)
        mu2, lv2 = self.encode(x2)
        q = self.intervention_posterior(mu1, mu2)
        mu_s, var_s = 0.5 * (mu1 + mu2), 0.5 * (lv1.exp() + lv2.exp())
        n_shared, n1, n2 = torch.randn_like(mu1), torch.randn_like(mu1), torch.randn_like(mu1)
        shared = mu_s + var_s.sqrt() * n_shared
        own1, own2 = mu1 + (0.5 * lv1).exp() * n1, mu2 + (0.5 * lv2).exp() * n2
        masks = torch.cat([torch.zeros(1, d, device=x1.device), torch.eye(d, device=x1.device)], 0)[:, None, :]
        e1 = (masks * own1[None] + (1 - masks) * shared[None]).reshape(-1, d)   # ((d+1)*B, d)
        e2 = (masks * own2[None] + (1 - masks) * shared[None]).reshape(-1, d)
        reps = (d + 1,) + (1,) * (x1.dim() - 1)
        rec = self.recon_error(torch.cat([x1.repeat(reps), x2.repeat(reps)]), torch.cat([e1, e2]), n_t)
        rec = rec.view(2, d + 1, -1).sum(0).T                                   # (B, d+1)
        half_log2pie = 0.5 * (1 + math.log(2 * math.pi))
        ent_shared, ent1, ent2 = 0.5 * var_s.log() + half_log2pie, 0.5 * lv1 + half_log2pie, 0.5 * lv2 + half_log2pie
        ent = ((1 - masks) * ent_shared[None] + masks * (ent1 + ent2)[None]).sum(2).T   # (B, d+1)
        # log p(e, e~ | I): N(0,1) on every e_j (e = shared off-target, own1 on target), plus the intervened e~_i
        # under the solution functions (context: the shared codes, dimension i masked)
        base = (masks * own1[None] + (1 - masks) * shared[None]).pow(2).mul(-0.5).sum(2).T - 0.5 * d * math.log(
            2 * math.pi)
        intervened = self.intervened_log_prior(shared, own2)                     # (B, d)
        logp = base + torch.cat([torch.zeros_like(intervened[:, :1]), intervened], 1)
        terms = rec - beta * (logp + ent)
        elbo_part = (q * terms).sum(1).mean()
        q_kl = (q * (q.log() + math.log(d + 1))).sum(1).mean()  # KL(q(I) || uniform prior)
        total = elbo_part + q_kl
        da = (mu2 - mu1).abs()
        off = (da.sum(1) - da.max(1).values).mean()
        if sparsity:
            total = total + sparsity * off
        return total, {"loss": float(elbo_part.detach()), "prior_intervened": float(-(q[:, 1:] * intervened).sum(1).mean().detach()),
                       "recon": float((q * rec).sum(1).mean().detach()),
                       "q_none": float(q[:, 0].mean().detach()), "off_target": float(off.detach())}
