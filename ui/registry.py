"""The one registry of pages: app.py builds navigation from it and Home draws one card per page.

A method page appears only once its file exists, so the registry can list pages in progress.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


@dataclass(frozen=True)
class PageSpec:
    file: str           # path relative to the project root
    title: str
    icon: str
    url_path: str
    purpose: str        # one line for the Home card
    paper: str          # the paper it demos
    link: str
    checkpoint: str | None = None  # model card whose headline metric the Home card shows

    @property
    def exists(self) -> bool:
        return (ROOT / self.file).exists()


HOME = PageSpec("pages/home.py", "Home", ":material/home:", "home", "", "", "")
MODELS = PageSpec("pages/models.py", "Models", ":material/inventory_2:", "models",
                  "Every shipped checkpoint with its model card.", "", "")

METHOD_PAGES = [
    PageSpec("pages/slots.py", "Slots", ":material/category:", "slots",
             "Browse how Slot Attention splits scenes into objects: masks, reconstructions, FG-ARI.",
             "Locatello et al., Object-Centric Learning with Slot Attention (NeurIPS 2020)",
             "https://arxiv.org/abs/2006.15055", "slots-sprites"),
    PageSpec("pages/video.py", "Video infill", ":material/movie:", "video",
             "Pick the known frames of a clip; a random-mask video diffusion model fills in the rest.",
             "Höppe et al., Diffusion Models for Video Prediction and Infilling (TMLR 2022)",
             "https://arxiv.org/abs/2206.07696", "video-bouncing"),
    PageSpec("pages/cells.py", "Cells", ":material/biotech:", "cells",
             "Generate single-cell counts per cell type and compare them with real cells on a UMAP.",
             "Palma et al., Generating Multi-Modal and Multi-Attribute Single-Cell Counts with CFGen (ICLR 2025)",
             "https://arxiv.org/abs/2407.11734", "cells-pbmc68k"),
    PageSpec("pages/apt.py", "APT", ":material/shield:", "apt",
             "Tune a generator until a classifier is fooled while the digit stays the same.",
             "Christensen et al., Assessing Neural Network Robustness via Adversarial Pivotal Tuning (WACV 2024)",
             "https://arxiv.org/abs/2211.09782", "apt-generator"),
    PageSpec("pages/causal.py", "Causal", ":material/account_tree:", "causal",
             "Edit a causal graph, learn representations from observations, discover the graph again.",
             "Mamaghan et al., Diffusion Based Causal Representation Learning (Entropy 2024)",
             "https://arxiv.org/abs/2311.05421", "causal-dcrl"),
    PageSpec("pages/disentangle.py", "Disentanglement", ":material/grid_on:", "disentangle",
             "Score any representation with DCI-ES: disentanglement, completeness, informativeness, explicitness, size.",
             "Eastwood et al., DCI-ES: An Extended Disentanglement Framework (ICLR 2023)",
             "https://arxiv.org/abs/2210.00364", None),
    PageSpec("pages/robustness.py", "Robustness", ":material/swap_calls:", "robustness",
             "Does better in-distribution accuracy carry over to shifted digits? A zoo of 238 small classifiers.",
             "Wenzel et al., Assaying Out-Of-Distribution Generalization in Transfer Learning (NeurIPS 2022)",
             "https://arxiv.org/abs/2207.09239", "robustness-zoo"),
    PageSpec("pages/vqa.py", "VQA", ":material/quiz:", "vqa",
             "Ask questions about scenes: slots vs dense CNN features vs ground truth vs the question alone.",
             "Karimi Mamaghan et al., Exploring the Effectiveness of Object-Centric Representations in VQA (ICLR 2025)",
             "https://arxiv.org/abs/2407.15589", "vqa"),
    PageSpec("pages/diffenc.py", "DiffEnc", ":material/blur_on:", "diffenc",
             "Watch a learned encoder reshape digits as noise grows; compare bits/dim with VDM.",
             "Nielsen et al., DiffEnc: Variational Diffusion with a Learned Encoder (ICLR 2024)",
             "https://arxiv.org/abs/2310.19789", "diffenc"),
]


def available_pages() -> list[PageSpec]:
    return [p for p in METHOD_PAGES if p.exists]
