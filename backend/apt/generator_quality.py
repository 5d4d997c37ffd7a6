"""How good the APT generator is: per-class latent statistics, class accuracy of its samples, encoder
reconstruction, and a Fréchet distance in a digit CNN's features (FID's formula on a project CNN)."""

from __future__ import annotations

import numpy as np
import torch


def latent_stats(G, x: np.ndarray, y: np.ndarray, device="cpu"):
    """Per-class mean, covariance and top-3 principal directions (with their std) of the encoder means."""
    with torch.no_grad():
        mu, _ = G.encode(torch.as_tensor(x, device=device)[:, None], torch.as_tensor(y, device=device))
    mu = mu.cpu().double()
    means, covs, dirs, stds = [], [], [], []
    for c in range(10):
        m = mu[torch.as_tensor(y) == c]
        mean = m.mean(0)
        cov = torch.cov((m - mean).T)
        ev, vec = torch.linalg.eigh(cov)
        order = ev.argsort(descending=True)[:3]
        means.append(mean)
        covs.append(cov)
        dirs.append(vec[:, order].T)
        stds.append(ev[order].clamp(min=0).sqrt())
    return tuple(torch.stack(t).float() for t in (means, covs, dirs, stds))


def cnn_features(cnn, x: np.ndarray) -> np.ndarray:
    """Spatially averaged last-block features of a CNN (64-d) for the Fréchet distance."""
    with torch.no_grad():
        return cnn.features(torch.as_tensor(x)[:, None])[-1].mean((2, 3)).numpy().astype(np.float64)


def frechet(a: np.ndarray, b: np.ndarray) -> float:
    """Fréchet distance of two Gaussians fitted to feature sets a (N, d) and b (M, d)."""
    from scipy import linalg

    ma, mb = a.mean(0), b.mean(0)
    ca, cb = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    covmean, _ = linalg.sqrtm(ca @ cb, disp=False)
    return float(((ma - mb) ** 2).sum() + np.trace(ca + cb - 2 * np.real(covmean)))


def blur(x: np.ndarray, sigma: float = 1.5) -> np.ndarray:
    from scipy.ndimage import gaussian_filter

    return np.stack([gaussian_filter(i, sigma) for i in x]).astype(np.float32)


def generator_quality(G, cnn, mlp, stats, x_train, x_test, y_test, seed: int, n: int = 1000) -> dict:
    """Class accuracy (CNN, MLP) of `n` samples from the fitted per-class Gaussians and from the prior,
    encoder reconstruction PSNR on the test split, and Fréchet distances to the test split's CNN features
    (generated, real training digits, blurred test digits)."""
    mean, cov, _, _ = stats
    chol = torch.linalg.cholesky(cov.double() + 1e-4 * torch.eye(cov.shape[-1], dtype=torch.float64)).float()
    gen = torch.Generator().manual_seed(seed + 12345)  # unseen sampling seed
    y = torch.arange(n) % 10
    with torch.no_grad():
        w = mean[y] + torch.einsum("nij,nj->ni", chol[y], torch.randn(n, mean.shape[1], generator=gen))
        s_fit = G.decode(w, y)
        s_prior = G.decode(torch.randn(n, mean.shape[1], generator=gen), y)
        yt = torch.as_tensor(y_test)
        mu, _ = G.encode(torch.as_tensor(x_test)[:, None], yt)
        rec = G.decode(mu, yt)[:, 0].numpy()
        acc = {"gen_class_acc_cnn": float((cnn(s_fit).argmax(1) == y).float().mean()),
               "gen_class_acc_mlp": float((mlp(s_fit).argmax(1) == y).float().mean()),
               "gen_class_acc_cnn_prior_samples": float((cnn(s_prior).argmax(1) == y).float().mean())}
    mse = ((rec - x_test) ** 2).mean((1, 2)) / 4  # [0, 1] units
    f_test = cnn_features(cnn, x_test)
    return {
        **acc,
        "encoder_recon_psnr_db": float(np.mean(10 * np.log10(1 / np.maximum(mse, 1e-12)))),
        "fd_cnn_features_generated": frechet(cnn_features(cnn, s_fit[:, 0].numpy()[: len(x_test)]), f_test),
        "fd_cnn_features_train_real": frechet(cnn_features(cnn, x_train[: len(x_test)]), f_test),
        "fd_cnn_features_blurred_test": frechet(cnn_features(cnn, blur(x_test)), f_test),
    }


def disc_scores(D, G, stats, x_test, y_test, seed: int, noise: float = 0.1) -> dict:
    """Mean discriminator score D(x, y) on real test digits, on the generator's samples, and on test digits
    with uniform pixel noise of ±`noise` ([0, 1] units): the realism term's view of each."""
    mean, cov, _, _ = stats
    chol = torch.linalg.cholesky(cov.double() + 1e-4 * torch.eye(cov.shape[-1], dtype=torch.float64)).float()
    gen = torch.Generator().manual_seed(seed + 54321)
    x, y = torch.as_tensor(x_test)[:, None], torch.as_tensor(y_test)
    with torch.no_grad():
        w = mean[y] + torch.einsum("nij,nj->ni", chol[y], torch.randn(len(y), mean.shape[1], generator=gen))
        noisy = (x + (torch.rand(x.shape, generator=gen) * 2 - 1) * 2 * noise).clamp(-1, 1)
        return {"disc_score_real_test": float(D(x, y).mean()), "disc_score_generated": float(D(G.decode(w, y), y).mean()),
                f"disc_score_test_noise{noise}": float(D(noisy, y).mean())}
