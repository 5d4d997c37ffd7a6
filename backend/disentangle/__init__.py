"""Disentanglement metrics (DCI-ES) for any representation the app learns, plus toy codes and uploads.

Eastwood et al., "DCI-ES: An Extended Disentanglement Framework with Connections to Identifiability",
ICLR 2023 (arXiv:2210.00364). Public API:

    from backend.disentangle import dci_es, compare
    res = dci_es(codes, factors, discrete=None, probe="rf", capacities=None, seed=0, progress=None)
    cmp = compare(["toy:identity", "causal:dcrl"], probe="rf", n=2000, k=4, seed=0)   # the page's request
"""

from backend.disentangle.compare import (
    UPLOAD,
    Comparison,
    ResultStore,
    Scored,
    Upload,
    compare,
    example_csv,
    read_upload,
    score_source,
    source_key,
)
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
    "AXIS", "DEFAULT_CAPACITIES", "PROBES", "TOY_CODES", "UPLOAD",
    "Comparison", "DCIResult", "Representation", "ResultStore", "Scored", "Upload",
    "available_sources", "compare", "completeness", "completeness_per_factor", "dci_es", "disentanglement",
    "disentanglement_per_code", "example_csv", "explicitness", "factors_frame", "infer_discrete", "load_codes_file",
    "load_source", "read_upload", "running_min", "score_source", "scores_csv", "scores_frame", "size",
    "source_key", "to_csv_bytes", "toy_codes",
]
