"""Disentanglement metrics (DCI-ES) for any representation the app learns, plus toy codes and uploads.

Eastwood et al., "DCI-ES: An Extended Disentanglement Framework with Connections to Identifiability",
ICLR 2023 (arXiv:2210.00364). Public API:

    from backend.disentangle import dci_es
    res = dci_es(codes, factors, discrete=None, probe="rf", capacities=None, seed=0, progress=None)
"""

from backend.disentangle.data import TOY_CODES, load_codes_file, to_csv_bytes, toy_codes
from backend.disentangle.dci import DCIResult, dci_es, factors_frame, infer_discrete, scores_csv, scores_frame
from backend.disentangle.metrics import (
    completeness,
    completeness_per_factor,
    disentanglement,
    disentanglement_per_code,
    explicitness,
    running_min,
    size,
)
from backend.disentangle.probes import AXIS, DEFAULT_CAPACITIES, PROBES
from backend.disentangle.sources import Representation, available_sources, load_source

__all__ = [
    "AXIS",
    "DEFAULT_CAPACITIES",
    "PROBES",
    "TOY_CODES",
    "DCIResult",
    "Representation",
    "available_sources",
    "completeness",
    "completeness_per_factor",
    "dci_es",
    "disentanglement",
    "disentanglement_per_code",
    "explicitness",
    "factors_frame",
    "infer_discrete",
    "load_codes_file",
    "load_source",
    "running_min",
    "scores_csv",
    "scores_frame",
    "size",
    "to_csv_bytes",
    "toy_codes",
]
