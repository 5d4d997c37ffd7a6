"""Networks of the APT page, all small and trained by the project on 32×32 digits in [-1, 1].

- `CNN`: 3 × [conv3 + ReLU + maxpool2] -> linear; the target classifier (`cnn`), the PGD-trained
  robust classifier (`robust`, same architecture) and the perceptual net P (another seed).
- `MLP`: 1024 -> 512 -> 256 -> 10, a second architecture for transfer.
- `CVAE`: class-conditional VAE; its decoder is the "pretrained generator" G(w, y) that APT tunes,
  its encoder gives the amortised pivot initialisation (as e4e does for PTI).
- `Discriminator`: class-conditional projection discriminator (Miyato & Koyama 2018) trained with the
  cVAE as a cVAE-GAN; its generator loss −D(x, y) is APT's realism term (the paper's L_PG).
- `perceptual_distance`: LPIPS-style distance in P's features (LPIPS' ImageNet weights cannot be
  downloaded here, so P is a project-trained digit CNN, never the attacked classifier).
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F


class CNN(nn.Module):
    def __init__(self, width: int = 16, n_classes: int = 10):
        super().__init__()
        w = width
        self.blocks = nn.ModuleList([
            nn.Conv2d(1, w, 3, padding=1), nn.Conv2d(w, 2 * w, 3, padding=1), nn.Conv2d(2 * w, 4 * w, 3, padding=1),
        ])
        self.fc = nn.Linear(4 * w * 4 * 4, n_classes)
        self.config = {"arch": "cnn", "width": width, "n_classes": n_classes}

    def features(self, x: torch.Tensor) -> list[torch.Tensor]:
        feats = []
        h = x
        for conv in self.blocks:
            h = F.relu(conv(h))
            feats.append(h)
            h = F.max_pool2d(h, 2)
        return feats

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = x
        for conv in self.blocks:
            h = F.max_pool2d(F.relu(conv(h)), 2)
        return self.fc(h.flatten(1))

    def penultimate(self, x: torch.Tensor) -> torch.Tensor:
        h = x
        for conv in self.blocks:
            h = F.max_pool2d(F.relu(conv(h)), 2)
        return h.flatten(1)


class MLP(nn.Module):
    def __init__(self, hidden: tuple[int, ...] = (512, 256), n_classes: int = 10, dropout: float = 0.2):
        super().__init__()
        layers, d = [], 32 * 32
        for h in hidden:
            layers += [nn.Linear(d, h), nn.ReLU(), nn.Dropout(dropout)]
            d = h
        layers.append(nn.Linear(d, n_classes))
        self.net = nn.Sequential(*layers)
        self.config = {"arch": "mlp", "hidden": list(hidden), "n_classes": n_classes, "dropout": dropout}

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x.flatten(1))


class CVAE(nn.Module):
    """Class-conditional VAE. `decode(w, y)` is the generator G; `encode(x, y)` -> (mu, logvar)."""

    def __init__(self, latent: int = 16, n_classes: int = 10, width: int = 32):
        super().__init__()
        w = width
        self.latent, self.n_classes = latent, n_classes
        self.enc = nn.Sequential(
            nn.Conv2d(1 + n_classes, w, 4, 2, 1), nn.LeakyReLU(0.2),
            nn.Conv2d(w, 2 * w, 4, 2, 1), nn.LeakyReLU(0.2),
            nn.Conv2d(2 * w, 2 * w, 4, 2, 1), nn.LeakyReLU(0.2),
        )
        self.enc_fc = nn.Linear(2 * w * 4 * 4, 2 * latent)
        self.fc = nn.Linear(latent + n_classes, 2 * w * 4 * 4)
        self.dec = nn.Sequential(
            nn.ConvTranspose2d(2 * w, 2 * w, 4, 2, 1), nn.LeakyReLU(0.2),
            nn.ConvTranspose2d(2 * w, w, 4, 2, 1), nn.LeakyReLU(0.2),
            nn.ConvTranspose2d(w, 1, 4, 2, 1), nn.Tanh(),
        )
        self.width = w
        self.config = {"arch": "cvae", "latent": latent, "n_classes": n_classes, "width": width}

    def _onehot(self, y: torch.Tensor) -> torch.Tensor:
        return F.one_hot(y.long(), self.n_classes).float()

    def encode(self, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        c = self._onehot(y)[:, :, None, None].expand(-1, -1, x.shape[2], x.shape[3])
        h = self.enc(torch.cat([x, c], 1)).flatten(1)
        mu, logvar = self.enc_fc(h).chunk(2, dim=1)
        return mu, logvar.clamp(-8, 8)

    def decode(self, w: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        h = F.leaky_relu(self.fc(torch.cat([w, self._onehot(y)], 1)), 0.2)
        return self.dec(h.view(-1, 2 * self.width, 4, 4))

    def forward(self, x, y):
        mu, logvar = self.encode(x, y)
        w = mu + torch.randn_like(mu) * (0.5 * logvar).exp()
        return self.decode(w, y), mu, logvar


class Discriminator(nn.Module):
    """D(x, y) = ψ(h(x)) + embed(y)·h(x): a real/fake score per image, conditioned on the class."""

    def __init__(self, width: int = 32, n_classes: int = 10):
        super().__init__()
        w = width
        self.body = nn.Sequential(
            nn.Conv2d(1, w, 4, 2, 1), nn.LeakyReLU(0.2),
            nn.Conv2d(w, 2 * w, 4, 2, 1), nn.LeakyReLU(0.2),
            nn.Conv2d(2 * w, 2 * w, 4, 2, 1), nn.LeakyReLU(0.2),
        )
        self.out = nn.Linear(2 * w * 4 * 4, 1)
        self.embed = nn.Embedding(n_classes, 2 * w * 4 * 4)
        self.config = {"arch": "disc", "width": width, "n_classes": n_classes}

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        h = self.body(x).flatten(1)
        return self.out(h)[:, 0] + (self.embed(y.long()) * h).sum(1) / h.shape[1] ** 0.5


def build(config: dict) -> nn.Module:
    arch = config["arch"]
    if arch == "cnn":
        return CNN(config.get("width", 16), config.get("n_classes", 10))
    if arch == "mlp":
        return MLP(tuple(config.get("hidden", (512, 256))), config.get("n_classes", 10), config.get("dropout", 0.2))
    if arch == "cvae":
        return CVAE(config.get("latent", 16), config.get("n_classes", 10), config.get("width", 32))
    if arch == "disc":
        return Discriminator(config.get("width", 32), config.get("n_classes", 10))
    raise ValueError(f"unknown architecture {arch!r}")


def perceptual_distance(p: CNN, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """LPIPS-style: unit-normalise P's block features over channels, squared difference, spatial mean,
    summed over blocks. Returns (N,)."""
    fa, fb = p.features(a), p.features(b)
    d = 0.0
    for x, y in zip(fa, fb):
        x = x / (x.norm(dim=1, keepdim=True) + 1e-8)
        y = y / (y.norm(dim=1, keepdim=True) + 1e-8)
        d = d + (x - y).pow(2).sum(1).mean((1, 2))
    return d
