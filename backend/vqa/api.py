"""Public face of the VQA domain: the shipped `vqa` checkpoint's downstream models and one call per page request.

- `load_model(representation) -> VQAModel`: one representation's trained transformer with its feature extractor.
- `answer(images, questions, representation, objects=None) -> probs (Q, len(ANSWERS))`.
- `results() -> DataFrame`: test accuracy by representation and question type with 95 % Wilson intervals.
- `ask(seed, index, question) -> Asked`: a held-out scene, its questions, every representation's answer
  probabilities and the last block's attention over slots / segments (the page's one call per request).
- `report() -> VQAReport`: the card, accuracy vs steps, the compute table and upstream metrics.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np

from backend.core import cached, load_checkpoint
from backend.core.cache import LockedModel
from backend.vqa.features import FEAT_DIMS, LABELS, OBJECT_CENTRIC, extract
from backend.vqa.questions import ANSWERS, Question, candidates, encode

NAME = "vqa"
BROWSE_SEED = 23_010  # the page's scenes: held out, never trained, validated or tested on
MAX_INDEX = 9_999


@cached
def _payload():
    payload, card = load_checkpoint(NAME)
    return payload, card


def representations() -> list:
    """The representations the shipped checkpoint has a transformer for, in training order."""
    return list(_payload()[0]["config"]["reps"])


class VQAModel(LockedModel):
    """One representation's downstream transformer; `answer` extracts the frozen features and answers."""

    def __init__(self, representation: str, net, autoencoder=None):
        super().__init__()
        self.representation, self.net, self.autoencoder = representation, net.eval(), autoencoder

    def answer(self, images, texts: list, scene_of: np.ndarray, objects=None, attention: bool = False,
               features=None):
        """Probabilities (Q, len(ANSWERS)); with `attention`, also [CLS] attention (Q, T) and token masks.
        `features`: precomputed (tokens, masks) of `images` for this representation."""
        import torch

        tok, masks = features or extract(self.representation, np.asarray(images), objects, self.autoencoder,
                                         with_masks=True)
        words = torch.from_numpy(np.stack([encode(t) for t in texts]))
        with self.lock, torch.inference_mode():
            probs = self.net(torch.from_numpy(tok[scene_of]), words).softmax(1).numpy()
            att = self.net.token_attention() if attention else None
        return (probs, att, masks) if attention else probs


@cached
def load_model(representation: str) -> VQAModel:
    """The shipped downstream model of `representation` (one of `representations()`), loaded once per process."""
    from backend.vqa.model import Autoencoder, VQANet

    payload, _ = _payload()
    reps, c = payload["config"]["reps"], payload["config"]
    if representation not in reps:
        raise ValueError(f"No VQA model for representation {representation!r}; the shipped checkpoint has: "
                         f"{', '.join(reps)}.")
    net = VQANet(FEAT_DIMS[representation], d=c["d"], layers=c["layers"])
    prefix = representation + "."
    net.load_state_dict({k[len(prefix):]: v for k, v in payload["state_dict"].items() if k.startswith(prefix)})
    ae = None
    if representation == "autoencoder":
        ae = Autoencoder()
        ae.load_state_dict(payload["autoencoder"])
        ae.eval()
    return VQAModel(representation, net, ae)


def _texts(questions, n_images: int) -> tuple[list, np.ndarray]:
    texts, scene = [], []
    for i, q in enumerate(questions):
        if isinstance(q, Question):
            texts.append(q.text)
            scene.append(q.scene)
        else:
            texts.append(str(q))
            scene.append(0 if n_images == 1 else i)
    scene = np.asarray(scene, np.int64)
    if len(scene) and (scene.max() >= n_images or scene.min() < 0):
        raise ValueError(f"A question refers to scene {int(scene.max())} but only {n_images} images were given; "
                         "pass one image, one image per question, or Questions with their scene index.")
    return texts, scene


def answer(images, questions, representation: str, objects=None) -> np.ndarray:
    """Answer probabilities (Q, len(ANSWERS)) of `representation`'s model. `questions`: `Question`s (their `scene`
    indexes `images`) or texts (all about the one image, or one image per text). `gt` needs `objects`."""
    images = np.asarray(images)
    if images.ndim == 3:
        images = images[None]
    texts, scene = _texts(list(questions), len(images))
    if not texts:
        raise ValueError("No questions given; pass at least one question.")
    return load_model(representation).answer(images, texts, scene, objects)


def results():
    """pandas DataFrame: representation, label, type, accuracy, low, high (95 % Wilson), n: the test evaluation."""
    import pandas as pd

    payload, _ = _payload()
    df = pd.DataFrame(payload["evaluation"]["table"])
    df.insert(1, "label", df["representation"].map(LABELS))
    return df


@dataclass
class Asked:
    image: np.ndarray  # uint8 (R,R,3)
    objects: list
    questions: list  # texts the templates ask about this scene, with their answers: [(text, answer, template)]
    question: str
    truth: str | None  # the ground-truth answer when the question is one of the templates' questions
    probs: dict  # representation -> (len(ANSWERS),) probabilities
    attention: dict = field(default_factory=dict)  # representation -> (T,) [CLS] attention over tokens
    masks: dict = field(default_factory=dict)  # representation -> (T,R,R) masks of its tokens (object-centric)
    seconds: float = 0.0  # wall time to answer with every representation


def ask(seed: int = BROWSE_SEED, index: int = 0, question: str | None = None, reps: list | None = None) -> Asked:
    """Scene `index` of the held-out browse set (seed `seed`), the template questions about it, and every
    representation's answer to `question` (default: the first template question); texts may be composed freely
    from the question vocabulary."""
    from backend.slots import make_scenes

    if not 0 <= int(index) <= MAX_INDEX:
        raise ValueError(f"The scene index must be between 0 and {MAX_INDEX}; got {index}.")
    images, _, objects = make_scenes(1, seed=int(seed), start=int(index))
    qs = [(t, a, tpl) for tpl, t, a, _ in candidates(objects[0])]
    text = (question or qs[0][0]).strip().rstrip("?").lower()
    encode(text)  # ValueError with the vocabulary when a word is unknown
    truth = next((a for t, a, _ in qs if t == text), None)
    t0 = time.time()
    out = Asked(images[0], objects[0], qs, text, truth, {})
    shared = {}  # slots reuse the slots_mask pass (the same slot model, the same noise)
    for r in reps or representations():
        feats = None
        if r == "slots" and "slots_mask" in shared:
            tok, masks = shared["slots_mask"]
            feats = (tok[..., :FEAT_DIMS["slots"]], masks)
        elif r == "slots_mask":
            feats = shared[r] = extract(r, images, objects, with_masks=True)
        probs, att, masks = load_model(r).answer(images, [text], np.zeros(1, np.int64), objects, attention=True,
                                                 features=feats)
        out.probs[r] = probs[0]
        if r in OBJECT_CENTRIC:
            out.attention[r], out.masks[r] = att[0], masks[0]
    out.seconds = time.time() - t0
    return out


@dataclass
class VQAReport:
    card: dict
    table: object  # DataFrame (see `results`)
    steps: list  # validation accuracy vs step: [{"step", rep: acc, ...}]
    compute: dict
    upstream: dict  # representation -> FG-ARI on test scenes (object-centric ones and gt)
    n_questions: dict


def report() -> VQAReport:
    payload, card = _payload()
    ev = payload["evaluation"]
    return VQAReport(card, results(), payload.get("training", {}).get("snapshots", []), ev.get("compute", {}),
                     ev.get("upstream_fg_ari", {}), ev.get("n_questions", {}))


__all__ = ["ANSWERS", "BROWSE_SEED", "Asked", "VQAModel", "VQAReport", "answer", "ask", "load_model", "report",
           "representations", "results"]
