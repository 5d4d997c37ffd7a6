"""Training losses of the Slot Attention recipes beyond the paper's reconstruction MSE.

- `mask_entropy`: the alpha masks' per-pixel entropy across slots; a small weight of it sharpens the
  masks so each pixel, the plain background included, goes to one slot (the paper: MSE only).
- `distill_loss`: self-distillation towards a frozen teacher's test-time-averaged masks of the same
  scenes (the paper: no distillation). No labels are used by either.
"""

from __future__ import annotations

import numpy as np


def mask_entropy(masks):
    """Mean over pixels of the entropy (nats) of the decoder's alpha masks across slots, masks (B, K, H, W)."""
    m = masks.clamp_min(1e-8)
    return -(m * m.log()).sum(1).mean()


def distill_loss(masks, teacher):
    """Mean per-pixel KL(teacher || masks) across slots, after matching each image's teacher slots to its slots
    (Hungarian, on the cross-entropy): the student's slot order follows its own initialisation noise. Both
    (B, K, H, W), summing to 1 over K."""
    import torch
    from scipy.optimize import linear_sum_assignment

    log_m = masks.clamp_min(1e-8).log()
    t = teacher.clamp_min(0)
    with torch.no_grad():
        cost = -torch.einsum("bkhw,bjhw->bkj", t, log_m).cpu().numpy()  # teacher slot k vs student slot j
    perm = np.empty(cost.shape[:2], np.int64)
    for i, c in enumerate(cost):
        rows, cols = linear_sum_assignment(c)
        perm[i, cols] = rows  # student slot cols[r] gets teacher slot rows[r]
    t = torch.gather(t, 1, torch.from_numpy(perm).to(t.device)[:, :, None, None].expand_as(t))
    return (t * (t.clamp_min(1e-8).log() - log_m)).sum(1).mean()


def reconstruction_loss(net, x, teacher=None, entropy_weight: float = 0.0, distill_weight: float = 0.0):
    """The training loss of a batch x (B, 3, R, R) in [-1, 1]: reconstruction MSE, plus `entropy_weight` x
    `mask_entropy` and `distill_weight` x `distill_loss` against `teacher` masks (B, K, R, R). Returns (loss, logs)."""
    import torch

    out = net(x)
    mse = torch.nn.functional.mse_loss(out["recon"], x)
    loss, logs = mse, {"mse": mse.detach()}
    if entropy_weight:
        ent = mask_entropy(out["masks"])
        loss, logs["entropy"] = loss + entropy_weight * ent, ent.detach()
    if distill_weight:
        kl = distill_loss(out["masks"], teacher)
        loss, logs["distill"] = loss + distill_weight * kl, kl.detach()
    return loss, logs
