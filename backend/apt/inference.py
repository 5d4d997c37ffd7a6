"""Plain uses of the shipped models: classify digits, sample the generator, measure an image change."""

from __future__ import annotations

import numpy as np

from backend.apt import metrics as M
from backend.apt.data import SIZE, from_uint8, to_uint8
from backend.apt.inputs import check_classifier, check_image, check_label
from backend.apt.loading import load_models


def to_tensor(images: np.ndarray, dev):
    """uint8 images (N, 32, 32, 3) -> float tensor (N, 1, 32, 32) in [-1, 1] on `dev`."""
    import torch

    return torch.as_tensor(from_uint8(images), device=dev)[:, None]


def probabilities(net, x) -> np.ndarray:
    """Softmax of a classifier on a tensor batch, as float64 numpy (N, 10)."""
    import torch

    with torch.no_grad():
        return torch.softmax(net(x), 1).cpu().numpy().astype(np.float64)


def classify(images, classifier: str = "cnn") -> np.ndarray:
    """Class probabilities (N, 10) of uint8 images (N, 32, 32, 3) (or one image (32, 32, 3))."""
    m = load_models()
    net = m.nets[check_classifier(classifier)]
    a = np.asarray(images)
    if a.ndim == 3:
        a = a[None]
    if a.ndim != 4:
        raise ValueError(f"Expected images (N, {SIZE}, {SIZE}, 3); got shape {a.shape}.")
    a = np.stack([check_image(i) for i in a])
    return probabilities(net, to_tensor(a, m.device))


def classify_all(image) -> dict:
    """classifier name -> (10,) probabilities for one image."""
    return {name: classify(image, name)[0] for name in load_models().classifiers}


def perceptual(original, changed) -> float:
    """Distance of two uint8 images in the features of the project-trained perceptual net P."""
    import torch

    from backend.apt.model import perceptual_distance

    m = load_models()
    with torch.no_grad():
        return float(perceptual_distance(m.perceptual, to_tensor(original[None], m.device),
                                         to_tensor(changed[None], m.device))[0])


def describe_change(original, changed) -> dict:
    """Change metrics (L2, L∞, RMSE, SSIM, high-frequency share; [0, 1] units) plus the perceptual
    distance in the project-trained net P."""
    a, b = check_image(original), check_image(changed)
    return {**M.change_metrics(a, b), "perceptual": perceptual(a, b)}


def generate(label: int, seed: int = 0, n: int = 1) -> np.ndarray:
    """Class-conditional samples of the generator, latents drawn from the class's fitted Gaussian
    (of the encoder means of the training digits): uint8 (n, 32, 32, 3)."""
    import torch

    y = check_label(label)
    if not 1 <= int(n) <= 256:
        raise ValueError("Ask for between 1 and 256 samples.")
    m = load_models()
    gen = torch.Generator().manual_seed(int(seed))
    eps = torch.randn(int(n), m.class_mean.shape[1], generator=gen).to(m.device)
    w = m.class_mean[y] + eps @ m.class_chol[y].T
    with torch.no_grad():
        x = m.generator.decode(w, torch.full((int(n),), y, device=m.device))
    return to_uint8(x[:, 0].cpu().numpy())
