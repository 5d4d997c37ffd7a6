"""Inference with a Slot Attention autoencoder: numpy in, numpy out.

`SlotModel.segment` resizes any RGB image to the model's input, runs the slot attention, and returns a
`Segmentation` at the input size. Two additions beyond the paper, both optional at call time:
duplicate-slot merging (`merge_duplicate_slots`; the paper reads the plain argmax of the alpha masks)
and test-time averaging over passes (`passes`; the paper uses one pass). `posterior_masks` is a
second readout of the same decoder (each pixel's posterior over slots given its colour).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from backend.core.cache import LockedModel

MAX_SLOTS = 10
MAX_ITERS = 10
MAX_PASSES = 16


@dataclass
class Segmentation:
    masks: np.ndarray  # float32 (N,K,H,W), sums to 1 over K, at the input size
    recon: np.ndarray  # uint8 (N,H,W,3)
    slot_recons: np.ndarray  # uint8 (N,K,H,W,3): each slot's RGB times its mask
    slots: np.ndarray  # float32 (N,K,D)
    attn: np.ndarray  # float32 (N,K,H,W): the last iteration's attention (softmax over slots)
    slot_rgbs: np.ndarray  # uint8 (N,K,H,W,3): each slot's RGB before masking
    merged_into: np.ndarray | None = None  # int (N,K): the slot each slot was merged into (itself when kept)

    @property
    def labels(self) -> np.ndarray:
        """Hard segmentation (N,H,W): argmax over slots."""
        return self.masks.argmax(1)

    def scene(self, i: int) -> Segmentation:
        """Image i alone, as a one-image Segmentation."""
        return Segmentation(**{k: None if v is None else v[i : i + 1] for k, v in vars(self).items()})


def merge_duplicate_slots(masks: np.ndarray, tau: float) -> tuple[np.ndarray, np.ndarray]:
    """Merge slots that describe the same thing: per image, slots whose masks have cosine similarity above `tau`
    (transitively) become one, held by the lowest-numbered of them; the others' masks become zero. Slot Attention
    sends spare slots to the same entity (on a plain background two or three identical slots share it at about 1/2
    or 1/3 each, and the argmax between them is speckle). Distinct objects have nearly disjoint masks (similarity
    near 0), so they are not merged.

    The merged slot's mask is its strongest member's at each pixel, and every pixel's masks are then renormalised to
    sum to 1: each pixel keeps the slot that won it, renamed to its group (the argmax is `into[argmax]` of the
    input). Summing the members instead would let a background split over duplicates outvote an object on its edge
    pixels, which no single duplicate wins. masks (N,K,H,W) summing to 1 over K -> (merged masks, the slot each slot
    went into (N,K))."""
    from scipy.sparse.csgraph import connected_components

    m = np.asarray(masks, np.float32)
    n, k = m.shape[:2]
    flat = m.reshape(n, k, -1).astype(np.float64)
    unit = flat / np.maximum(np.linalg.norm(flat, axis=2, keepdims=True), 1e-12)
    sim = unit @ unit.transpose(0, 2, 1)  # (N,K,K)
    into = np.tile(np.arange(k), (n, 1))
    out = m.copy()
    for i in range(n):
        n_groups, group = connected_components(sim[i] > tau, directed=False)
        if n_groups == k:
            continue  # nothing to merge
        first = {g: j for j, g in reversed(list(enumerate(group)))}  # each group's lowest-numbered slot
        into[i] = [first[g] for g in group]
        out[i] = 0
        np.maximum.at(out[i], into[i], m[i])
        out[i] /= np.maximum(out[i].sum(0, keepdims=True), 1e-12)
    return out, into


def to_model_input(images, resolution: int) -> np.ndarray:
    """uint8 (N,H,W,3) / (H,W,3) of any size -> uint8 (N,R,R,3) by area resampling."""
    import cv2

    a = np.asarray(images)
    if a.ndim == 3:
        a = a[None]
    if a.ndim != 4 or a.shape[-1] != 3:
        raise ValueError(f"Images must be RGB arrays (N,H,W,3); got shape {a.shape}.")
    if a.shape[1] < 1 or a.shape[2] < 1:
        raise ValueError("Images must be at least 1×1 pixel.")
    if a.dtype != np.uint8:
        a = np.clip(a, 0, 255).astype(np.uint8)
    if a.shape[1:3] == (resolution, resolution):
        return a
    out = np.empty((len(a), resolution, resolution, 3), np.uint8)
    for i, im in enumerate(a):
        shrink = im.shape[0] > resolution or im.shape[1] > resolution
        interp = cv2.INTER_AREA if shrink else cv2.INTER_LINEAR
        out[i] = cv2.resize(im, (resolution, resolution), interpolation=interp)
    return out


def _resize_stack(x: np.ndarray, h: int, w: int, nearest: bool) -> np.ndarray:
    """Resize (..., r, r[, C]) float/uint8 maps to (..., h, w[, C]) with OpenCV."""
    import cv2

    lead = x.shape[:2]
    r = x.shape[2]
    interp = cv2.INTER_NEAREST if nearest else cv2.INTER_LINEAR
    flat = x.reshape(-1, r, r, *x.shape[4:])
    out = np.stack([cv2.resize(m, (w, h), interpolation=interp) for m in flat])
    return out.reshape(*lead, h, w, *x.shape[4:])


class SlotModel(LockedModel):
    """A trained Slot Attention autoencoder with a numpy-in, numpy-out `segment`."""

    def __init__(self, net, device, name: str = "", iters: int | None = None, merge: float | None = None):
        super().__init__()
        self.net, self.device, self.name = net.eval(), device, name
        self._iters = iters  # attention iterations at inference (default: the training's)
        self.merge = merge  # duplicate-slot merging threshold at inference (None: off)

    @property
    def resolution(self) -> int:
        return self.net.resolution

    @property
    def num_slots(self) -> int:
        return int(self.net.config["num_slots"])

    @property
    def iters(self) -> int:
        """Attention iterations `segment` uses by default: the checkpoint's readout (chosen on validation
        scenes after training) or else the number it was trained with."""
        return int(self._iters or self.net.config["iters"])

    def segment(self, images, num_slots: int | None = None, iters: int | None = None, seed: int = 0,
                batch_size: int = 128, merge: float | bool | None = None, passes: int = 1) -> Segmentation:
        """Segment uint8 RGB images of any size; outputs come back at the input H×W.

        `num_slots` and `iters` may differ from training (Slot Attention allows both at test time).
        The slot initialisation noise is drawn from `seed`, so the same call gives the same answer.
        `merge`: duplicate slots are merged (`merge_duplicate_slots`) at this mask-similarity threshold; None uses
        the model's (the checkpoint's `merge_tau`, chosen on validation scenes), False turns merging off.
        `passes`: test-time averaging. Pass j segments the image (mirrored left-right when j is odd) with the slot
        initialisation of seed `seed + j // 2`; each pass's slots are matched to the first pass's by their masks
        (Hungarian, cosine similarity) and the alpha masks, slot colours and attention are averaged, then merged
        again. The masks stay the decoder's alpha masks, averaged; `slots` are the first pass's. Costs `passes`
        times one pass.
        """
        a = np.asarray(images)
        if a.ndim == 3:
            a = a[None]
        if a.ndim != 4 or a.shape[-1] != 3:
            raise ValueError(f"Images must be RGB arrays (N,H,W,3); got shape {a.shape}.")
        k = int(self.num_slots if num_slots is None else num_slots)
        it = int(self.iters if iters is None else iters)
        if not 1 <= k <= MAX_SLOTS:
            raise ValueError(f"The number of slots must be between 1 and {MAX_SLOTS}; got {k}.")
        if not 1 <= it <= MAX_ITERS:
            raise ValueError(f"The number of iterations must be between 1 and {MAX_ITERS}; got {it}.")
        if isinstance(passes, bool) or not isinstance(passes, (int, np.integer)) or not 1 <= passes <= MAX_PASSES:
            raise ValueError(f"The number of passes must be a whole number from 1 to {MAX_PASSES}; got {passes!r}.")
        tau = self.merge if merge is None or merge is True else (None if merge is False else float(merge))
        if tau is not None and not 0.0 < tau <= 1.0:
            raise ValueError(f"The merge threshold must be in (0, 1]; got {tau}.")
        h, w = a.shape[1:3]
        r = self.resolution
        x = to_model_input(a, r)
        runs = [self._pass(x, k, it, int(seed) + j // 2, j % 2 == 1, tau, batch_size) for j in range(int(passes))]
        masks, rgbs, attn, recon, slots, into = runs[0]
        if len(runs) > 1:
            masks, rgbs, attn, recon = _average_passes(runs)
            if tau is not None:
                masks, rgbs, attn, into = _apply_merge(masks, rgbs, attn, tau)
        if (h, w) != (r, r):
            masks = _resize_stack(masks, h, w, nearest=False)
            masks = np.clip(masks, 0, None)
            masks /= np.maximum(masks.sum(1, keepdims=True), 1e-8)
            attn = _resize_stack(attn, h, w, nearest=False)
            recon = _resize_stack(recon[:, None], h, w, nearest=False)[:, 0]
            rgbs = _resize_stack(rgbs, h, w, nearest=False)
        to8 = lambda t: np.clip(np.rint((t + 1) * 127.5), 0, 255).astype(np.uint8)  # noqa: E731
        slot_recons = to8(rgbs * masks[..., None] + (masks[..., None] - 1))  # masked, black elsewhere
        return Segmentation(masks=masks.astype(np.float32), recon=to8(recon), slot_recons=slot_recons,
                            slots=slots, attn=attn.astype(np.float32), slot_rgbs=to8(rgbs), merged_into=into)

    def _pass(self, x: np.ndarray, k: int, it: int, seed: int, mirror: bool, tau: float | None, batch_size: int):
        """One forward pass over uint8 (N,R,R,3) model inputs -> masks (N,K,R,R), rgbs (N,K,R,R,3) and recon
        (N,R,R,3) in [-1,1], attn (N,K,R,R), slots (N,K,D), merged_into (N,K) or None; merged at `tau` and, for a
        mirrored pass, mirrored back."""
        import torch

        if mirror:
            x = np.ascontiguousarray(x[:, :, ::-1])
        outs = {"masks": [], "recon": [], "rgbs": [], "slots": [], "attn": []}
        with self.lock, torch.inference_mode():
            gen = torch.Generator(device="cpu").manual_seed(int(seed))
            for s in range(0, len(x), batch_size):
                xb = torch.from_numpy(x[s:s + batch_size]).permute(0, 3, 1, 2).float().div(127.5).sub(1)
                noise = torch.randn(len(xb), k, self.net.config["slot_dim"], generator=gen)
                o = self.net(xb.to(self.device), num_slots=k, iters=it, noise=noise.to(self.device))
                for key in outs:
                    outs[key].append(o[key].float().cpu().numpy())
        masks = np.concatenate(outs["masks"]).astype(np.float32)
        recon = np.concatenate(outs["recon"]).transpose(0, 2, 3, 1)
        rgbs = np.concatenate(outs["rgbs"]).transpose(0, 1, 3, 4, 2)
        attn = np.concatenate(outs["attn"]).astype(np.float32)
        slots = np.concatenate(outs["slots"]).astype(np.float32)
        if mirror:
            masks, attn = masks[..., ::-1], attn[..., ::-1]
            rgbs, recon = rgbs[:, :, :, ::-1], recon[:, :, ::-1]
        into = None
        if tau is not None:
            masks, rgbs, attn, into = _apply_merge(masks, rgbs, attn, tau)
        return (np.ascontiguousarray(masks), np.ascontiguousarray(rgbs), np.ascontiguousarray(attn),
                np.ascontiguousarray(recon), slots, into)


def _apply_merge(masks, rgbs, attn, tau: float):
    """`merge_duplicate_slots` at the model's resolution; a merged slot draws its members' mask-weighted colour and
    sums their attention."""
    k = masks.shape[1]
    rgbs, attn = rgbs.copy(), attn.copy()
    merged, into = merge_duplicate_slots(masks, tau)
    for i in np.flatnonzero((into != np.arange(k)).any(1)):
        wsum, msum = np.zeros_like(rgbs[i]), np.zeros_like(masks[i])
        np.add.at(wsum, into[i], rgbs[i] * masks[i][..., None])
        np.add.at(msum, into[i], masks[i])
        keep = msum > 1e-6
        rgbs[i][keep] = wsum[keep] / msum[keep][:, None]
        att = np.zeros_like(attn[i])
        np.add.at(att, into[i], attn[i])
        attn[i] = att
    return merged, rgbs, attn, into


def match_slots(ref: np.ndarray, masks: np.ndarray) -> np.ndarray:
    """Per image, the permutation of `masks`' slots that best matches `ref`'s (Hungarian on the cosine similarity
    of the masks): (N,K) indices with masks[i, perm[i, k]] matched to ref[i, k]. Both (N,K,H,W)."""
    from scipy.optimize import linear_sum_assignment

    n, k = ref.shape[:2]
    a = ref.reshape(n, k, -1).astype(np.float64)
    b = masks.reshape(n, k, -1).astype(np.float64)
    a /= np.maximum(np.linalg.norm(a, axis=2, keepdims=True), 1e-12)
    b /= np.maximum(np.linalg.norm(b, axis=2, keepdims=True), 1e-12)
    sim = a @ b.transpose(0, 2, 1)
    perm = np.empty((n, k), np.int64)
    for i in range(n):
        rows, cols = linear_sum_assignment(-sim[i])
        perm[i, rows] = cols
    return perm


def _average_passes(runs: list):
    """Average passes (from `SlotModel._pass`) slot by slot after matching each to the first: masks and attention
    are means, a slot's colour is its mask-weighted mean (so the reconstruction is the passes' mean)."""
    masks0, rgbs0, attn0, recon0 = runs[0][:4]
    m_sum, mr_sum, a_sum, rec_sum = masks0.copy(), masks0[..., None] * rgbs0, attn0.copy(), recon0.copy()
    for masks, rgbs, attn, recon, _, _ in runs[1:]:
        perm = match_slots(masks0, masks)
        pm = np.take_along_axis(masks, perm[:, :, None, None], 1)
        m_sum += pm
        mr_sum += pm[..., None] * np.take_along_axis(rgbs, perm[:, :, None, None, None], 1)
        a_sum += np.take_along_axis(attn, perm[:, :, None, None], 1)
        rec_sum += recon
    n = len(runs)
    rgbs = np.where(m_sum[..., None] > 1e-6, mr_sum / np.maximum(m_sum[..., None], 1e-6), rgbs0)
    return m_sum / n, rgbs.astype(np.float32), a_sum / n, rec_sum / n


def posterior_masks(images, seg: Segmentation, min_var: float = 1e-4) -> np.ndarray:
    """A second readout of the same model: each pixel's posterior over slots given the image.

    The decoder is a per-pixel mixture: slot k claims pixel p with prior mask_k(p) and draws it as rgb_k(p). With an
    isotropic Gaussian pixel likelihood whose variance is the image's mean squared reconstruction error (its
    maximum-likelihood value), p(k | x_p) is proportional to mask_k(p) * N(x_p; rgb_k(p), var). Where the alpha masks
    are blurred (object corners drawn as discs), the observed colour moves the pixel to the slot whose colour it has.
    `images` uint8 (N,H,W,3) at the size `seg` was computed for; returns float32 (N,K,H,W), summing to 1 over K.
    """
    x = np.asarray(images)
    if x.ndim == 3:
        x = x[None]
    if x.shape[:3] != seg.recon.shape[:3] or x.shape[-1] != 3:
        raise ValueError(f"Images {x.shape} do not match the segmentation {seg.recon.shape}.")
    out = np.empty(seg.masks.shape, np.float32)
    for i in range(len(x)):  # one image at a time: bounded memory for large uploads
        xi = x[i].astype(np.float32) / 255.0
        var = max(float(((seg.recon[i].astype(np.float32) / 255.0 - xi) ** 2).mean()), min_var)
        d2 = ((seg.slot_rgbs[i].astype(np.float32) / 255.0 - xi[None]) ** 2).sum(-1)  # (K,H,W)
        logp = np.log(np.maximum(seg.masks[i], 1e-8)) - d2 / (2.0 * var)
        logp -= logp.max(0, keepdims=True)
        p = np.exp(logp)
        out[i] = p / p.sum(0, keepdims=True)
    return out
