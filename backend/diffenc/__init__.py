"""DiffEnc page back end: VDM and DiffEnc (a learned, time-dependent encoder) on 14x14 digits, compared in bits/dim.

Public API:

    load_model(name)                      # "vdm" | "vdm-matched" | "diffenc" -> Model (shipped seed-0 weights)
    bpd(images, model, repeats, seed)     # -> Bpd: per-image bits/dim + terms, common random numbers per seed
    encode(images, t)                     # -> Encoding: x, x_phi(x, t), y_phi(x, t), alpha_t^2 x at each t
    sample(n, model, steps, seed)         # -> Samples: digits (n, 14, 14) uint8 and the z_t trajectory
    loss_curves(), comparison(), ood_bpd(...), test_digits(...), to_digit(image)

Method: Nielsen, Christensen, Dittadi, Winther, "DiffEnc: Variational Diffusion with a Learned Encoder"
(ICLR 2024); VDM: Kingma, Salimans, Poole, Ho (NeurIPS 2021). A CPU-sized re-implementation from the papers.
"""

from backend.diffenc.api import (
    MODELS,
    Bpd,
    EncoderView,
    Encoding,
    Model,
    Samples,
    as_images,
    bpd,
    bpd_all,
    comparison,
    encode,
    encoder_view,
    load_model,
    loss_curves,
    ood_bpd,
    ready,
    sample,
    samples_all,
    to_u8,
)
from backend.diffenc.data import font_digits, sklearn_digits, to_digit


def test_digits(n: int = 16, offset: int = 0):
    """`n` held-out test digits (14x14 uint8) and their labels, starting at `offset`."""
    from backend.diffenc.data import load_digits

    imgs, labels = load_digits()["test"]
    if not 0 <= offset < len(imgs):
        raise ValueError(f"Pick a test digit between 0 and {len(imgs) - 1}.")
    return imgs[offset:offset + n], labels[offset:offset + n]


__all__ = ["MODELS", "Bpd", "EncoderView", "Encoding", "Model", "Samples", "as_images", "bpd", "bpd_all", "comparison",
           "encode", "encoder_view", "samples_all", "to_u8",
           "font_digits", "load_model", "loss_curves", "ood_bpd", "ready", "sample", "sklearn_digits", "test_digits",
           "to_digit"]
