"""Where representations come from: built-in toy codes and the other pages' public APIs.

A source whose package is not built (or lacks its public function) is simply not offered.
Each source returns a `Representation` (codes, factors, names, discrete flags) ready for `dci_es`.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass

import numpy as np

from backend.disentangle.data import TOY_CODES, toy_codes

SLOT_VARIANTS = ("sprites", "textured")
SLOT_SCENES = 300  # scenes per slots representation (the "Samples" setting does not apply)
CAUSAL_LEARNERS = {"dcrl": "DCRL (diffusion)", "vae": "VAE baseline", "oracle": "oracle"}


@dataclass
class Representation:
    name: str
    codes: np.ndarray
    factors: np.ndarray
    factor_names: list
    discrete: np.ndarray | None = None
    note: str = ""


def _public(module: str, fn: str):
    """The public function `module.fn`, or None when that package is not built yet."""
    try:
        return getattr(importlib.import_module(module), fn, None)
    except ImportError:
        return None


def available_sources() -> dict:
    """source key -> label, for every source that can be computed in this checkout."""
    out = {f"toy:{k}": f"Toy: {k}" for k in TOY_CODES}
    if _public("backend.causal", "representation") is not None:
        out.update({f"causal:{k}": f"Causal: {v}" for k, v in CAUSAL_LEARNERS.items()})
    if _public("backend.slots", "matched_slots") is not None:
        out.update({f"slots:{v}": f"Slots: matched slots ({v})" for v in SLOT_VARIANTS})
    return out


def load_source(key: str, n: int = 2000, k: int = 4, seed: int = 0) -> Representation:
    """Build the representation named by `key` (from `available_sources`)."""
    kind, _, which = key.partition(":")
    if kind == "toy":
        c, z, names = toy_codes(which, n=n, k=k, seed=seed)
        return Representation(f"Toy: {which}", c, z, names, None, TOY_CODES[which])
    if kind == "causal":
        fn = _public("backend.causal", "representation")
        if fn is None or which not in CAUSAL_LEARNERS:
            raise ValueError(f"The Causal source {key!r} is not available in this build.")
        codes, latents = fn(learner=which, n=n, seed=seed + 1)
        latents = np.asarray(latents, dtype=float)
        names = [f"z{j + 1}" for j in range(latents.shape[1])]
        return Representation(f"Causal: {CAUSAL_LEARNERS[which]}", np.asarray(codes, dtype=float), latents, names,
                              np.zeros(latents.shape[1], bool),
                              f"the Causal page's {CAUSAL_LEARNERS[which]} codes vs the true latents of its "
                              f"default graph, on {n} fresh samples")
    if kind == "slots":
        fn = _public("backend.slots", "matched_slots")
        if fn is None or which not in SLOT_VARIANTS:
            raise ValueError(f"The Slots source {key!r} is not available in this build.")
        codes, factors, names, disc = fn(variant=which, n=SLOT_SCENES, seed=10_000 + seed)
        return Representation(f"Slots: matched slots ({which})", np.asarray(codes, dtype=float), np.asarray(factors, dtype=float),
                              [str(x) for x in names], np.asarray(disc, dtype=bool),
                              f"the Slots page's slot vectors, Hungarian-matched to the objects of {SLOT_SCENES} "
                              f"held-out scenes ({len(codes)} objects), vs the objects' properties")
    raise ValueError(f"Unknown representation source {key!r}.")
