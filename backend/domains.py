"""The method domains and where their trainers and benchmarks live.

Each domain package may provide `train.py` with `RECIPES = {name: Recipe subclass}` (see
`backend.core.training`; each name is one checkpoint) and optionally `GROUPS = {name: [recipe names]}`
(trained in order), and `bench.py` with `run(quick=False) -> list[dict]` (rows for a table).
A domain that is not built yet is simply absent from the lists.
"""

from __future__ import annotations

import importlib

DOMAINS = {
    "slots": "backend.slots",
    "video": "backend.video",
    "cells": "backend.cells",
    "apt": "backend.apt",
    "causal": "backend.causal",
    "disentangle": "backend.disentangle",
    "robustness": "backend.robustness",
    "vqa": "backend.vqa",
    "diffenc": "backend.diffenc",
}


def _module(domain: str, sub: str):
    name = f"{DOMAINS[domain]}.{sub}"
    try:
        return importlib.import_module(name)
    except ModuleNotFoundError as e:
        if e.name and (name.startswith(e.name) or e.name.startswith(DOMAINS[domain])):
            return None
        raise


def _collect(attribute: str) -> dict:
    out = {}
    for d in DOMAINS:
        m = _module(d, "train")
        if m is not None:
            out.update(getattr(m, attribute, {}))
    return out


def recipes() -> dict:
    """checkpoint name -> Recipe class, for every built domain, in domain order."""
    return _collect("RECIPES")


def groups() -> dict:
    """group name -> checkpoint names trained in order (e.g. "apt" -> its classifiers and generator)."""
    return _collect("GROUPS")


def benches() -> dict:
    """domain -> bench function, for every built domain."""
    out = {}
    for d in DOMAINS:
        m = _module(d, "bench")
        if m is not None and hasattr(m, "run"):
            out[d] = m.run
    return out
