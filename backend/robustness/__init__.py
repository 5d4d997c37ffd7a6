"""Out-of-distribution robustness over a zoo of a few hundred small digit classifiers.

Wenzel, Dittadi, Gehler, Simon-Gabriel, Horn, Zietlow, Kernert, Russell, Brox, Schiele, Schölkopf, Locatello,
"Assaying Out-Of-Distribution Generalization in Transfer Learning", NeurIPS 2022 (arXiv:2207.09239).
Public API:

    from backend.robustness import zoo, domains, shift, fit_pair, train_one
    z = zoo()                                       # DataFrame, one row per member
    f = fit_pair(z, "mnist", "rotation/3")          # slope, r2, tau, intervals (probit scale)
    row = train_one({"arch": "cnn-small", "aug": "affine"}, seed=0, progress=None)
    s = study("mnist", "uci", intervention="aug")   # the page's request
"""

from backend.robustness.api import (
    Study,
    domains,
    ood_choices,
    previews,
    reliability_pair,
    severity_labels,
    shipped_members,
    study,
    train_one,
    zoo,
)
from backend.robustness.fits import INTERVENTIONS, fit_pair, paired_effects, proxy_ranking
from backend.robustness.member import TRANSFER, check_config, member_id
from backend.robustness.model import ARCHS, AUGS
from backend.robustness.shifts import KINDS, SEVERITIES, shift

__all__ = [
    "ARCHS", "AUGS", "INTERVENTIONS", "KINDS", "SEVERITIES", "TRANSFER", "Study", "check_config", "domains",
    "fit_pair", "member_id", "ood_choices", "paired_effects", "previews", "proxy_ranking", "reliability_pair",
    "severity_labels", "shift", "shipped_members", "study", "train_one", "zoo",
]
