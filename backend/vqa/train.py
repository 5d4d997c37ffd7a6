"""Recipe `vqa` (`python -m backend.train vqa`): one downstream transformer per frozen representation.

Scenes: `make_scenes` sprites from a new training seed range (VQA_TRAIN_SEED, >= TRAIN_SEED_BASE), validation
(VQA_VAL_SEED) and test (VQA_TEST_SEED) sets never trained on; 4 balanced questions per scene (`questions`).
Features are extracted once per split and cached in runs/vqa/. Every representation's transformer (4 blocks, d=64)
trains on the same batches (same question indices) for the same steps with the same one-cycle schedule (10 %
warm-up to `lr`, cosine to 0): equal step budgets. Validation accuracy is logged every 1/4 of the run (accuracy vs
steps); nothing is selected on it. The test set is evaluated once, at the end.
"""

from __future__ import annotations

import hashlib
import time

import numpy as np

from backend.core.recipe import Phase, Recipe
from backend.core.registry import RUNS_DIR
from backend.vqa.features import FEAT_DIMS, LABELS, OBJECT_CENTRIC, extract
from backend.vqa.questions import TYPES, encode, questions

VQA_TRAIN_SEED = 2_300_000
VQA_VAL_SEED = 23_001
VQA_TEST_SEED = 23_002
CACHE = RUNS_DIR / "vqa"


def wilson(k: float, n: int, z: float = 1.96) -> tuple[float, float]:
    """95 % Wilson interval of a proportion k/n."""
    if n == 0:
        return 0.0, 1.0
    p = k / n
    c = (p + z * z / (2 * n)) / (1 + z * z / n)
    h = z * np.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return float(c - h), float(c + h)


class Split:
    """One split's scenes, questions (encoded), answers and each representation's cached tokens."""

    def __init__(self, n: int, seed: int, reps: list, q_seed: int, autoencoder=None, timings: dict | None = None):
        from backend.slots import make_scenes

        self.images, self.labels, self.objects = make_scenes(n, seed=seed)
        self.qs = questions(self.objects, q_seed)
        self.scene = np.array([q.scene for q in self.qs])
        self.words = np.stack([encode(q.text) for q in self.qs])
        self.answers = np.array([q.answer_index for q in self.qs])
        self.types = np.array([q.type for q in self.qs])
        self.tokens, self.masks = {}, {}
        for rep in reps:
            key = hashlib.sha1(f"{rep}-{n}-{seed}-{VQA_TRAIN_SEED}".encode()).hexdigest()[:12]
            path = CACHE / f"{rep}-{key}.npz"
            t = time.time()
            if rep == "slots" and "slots_mask" in self.tokens:  # the same pass: the slots without mask features
                self.tokens[rep] = self.tokens["slots_mask"][..., :FEAT_DIMS["slots"]]
                if timings is not None:
                    timings[rep] = timings.get("slots_mask", 0.0)
            elif path.exists() and rep != "autoencoder":  # cached: the extraction time measured when it was made
                cached = np.load(path)
                self.tokens[rep] = cached["tokens"]
                if timings is not None and "ms" in cached:
                    timings[rep] = timings.get(rep, 0.0) + float(cached["ms"])
            else:
                self.tokens[rep] = extract(rep, self.images, self.objects, autoencoder)
                ms = (time.time() - t) / n * 1000  # ms per scene
                if rep != "autoencoder":
                    CACHE.mkdir(parents=True, exist_ok=True)
                    np.savez(path, tokens=self.tokens[rep], ms=ms)
                if timings is not None:
                    timings[rep] = timings.get(rep, 0.0) + ms


class VQARecipe(Recipe):
    name = "vqa"
    title = "VQA over frozen representations of sprites scenes (one transformer per representation)"
    paper = ("Karimi Mamaghan et al., Exploring the Effectiveness of Object-Centric Representations in Visual "
             "Question Answering (ICLR 2025)")
    config = {"reps": ["question", "grid4", "slots_mask", "slots", "gt"], "n_train": 2000, "n_val": 200,
              "n_test": 1000, "batch": 64, "lr": 1e-3, "d": 64, "layers": 4, "ae_steps": 600}
    default_steps = 1000
    log_every = 25
    smoke = {"n_train": 24, "n_val": 8, "n_test": 8, "batch": 16, "reps": ["question", "gt"]}

    def __init__(self, **overrides):
        super().__init__(**overrides)
        self._data = None
        self.timings, self.train_ms = {}, {}
        self.autoencoder = None
        c = self.config
        self.data = (f"generated sprites scenes (32x32, 2-4 objects): {c['n_train']} training scenes (seed "
                     f"{VQA_TRAIN_SEED}+), {c['n_val']} validation (seed {VQA_VAL_SEED}), {c['n_test']} test "
                     f"(seed {VQA_TEST_SEED}, once); 4 balanced questions per scene, 10 templates")

    # -- data ---------------------------------------------------------------------------------------
    def splits(self):
        if self._data is None:
            from backend.slots import make_scenes
            from backend.vqa.model import train_autoencoder

            c, reps = self.config, list(self.config["reps"])
            if "autoencoder" in reps:
                t = time.time()
                self.autoencoder = train_autoencoder(make_scenes(c["n_train"], seed=VQA_TRAIN_SEED)[0],
                                                     int(c["ae_steps"]), seed=0)
                self.timings["autoencoder_training_s"] = time.time() - t
            self._data = {s: Split(c[f"n_{s}"], seed, reps, i, self.autoencoder, self.timings)
                          for i, (s, seed) in enumerate((("train", VQA_TRAIN_SEED), ("val", VQA_VAL_SEED),
                                                         ("test", VQA_TEST_SEED)))}
        return self._data

    # -- training -----------------------------------------------------------------------------------
    def build(self, ctx):
        from torch import nn

        from backend.vqa.model import VQANet

        c = self.config
        return nn.ModuleDict({r: VQANet(FEAT_DIMS[r], d=c["d"], layers=c["layers"]) for r in c["reps"]})

    def phases(self, steps):
        return [Phase("main", steps, batch=self.config["batch"], lr=self.config["lr"], warmup=max(1, steps // 10),
                      grad_clip=1.0)]

    def on_phase_start(self, model, ctx):
        tr = self.splits()["train"]
        for r, net in model.items():
            net.set_stats(tr.tokens[r])
        self.validate_every = max(1, ctx.phase.steps // 4)
        return None

    def batch(self, ctx):
        tr = self.splits()["train"]
        return ctx.rng.integers(0, len(tr.qs), ctx.batch_size)

    def _inputs(self, split, rep, idx, device):
        import torch

        tok = torch.from_numpy(split.tokens[rep][split.scene[idx]]).to(device)
        return tok, torch.from_numpy(split.words[idx]).to(device)

    def loss(self, model, idx, ctx):
        import torch
        import torch.nn.functional as F

        tr = self.splits()["train"]
        y = torch.from_numpy(tr.answers[idx]).to(ctx.device)
        total, logs = 0.0, {}
        for r, net in model.items():
            t = time.time()
            logits = net(*self._inputs(tr, r, idx, ctx.device))
            loss = F.cross_entropy(logits, y)
            self.train_ms[r] = self.train_ms.get(r, 0.0) + (time.time() - t) * 1000
            total = total + loss
            logs[f"acc_{r}"] = float((logits.argmax(1) == y).float().mean())
        return total, logs

    def predict(self, model, split, rep, batch: int = 512) -> np.ndarray:
        import torch

        out = []
        with torch.no_grad():
            for s in range(0, len(split.qs), batch):
                idx = np.arange(s, min(s + batch, len(split.qs)))
                out.append(model[rep](*self._inputs(split, rep, idx, "cpu")).softmax(1).numpy())
        return np.concatenate(out)

    def validate(self, model, ctx):
        va = self.splits()["val"]
        accs = {r: float((self.predict(model, va, r).argmax(1) == va.answers).mean()) for r in model}
        return {"score": float(np.mean(list(accs.values()))), **accs}

    # -- evaluation ---------------------------------------------------------------------------------
    def evaluate(self, model, ctx):
        te = self.splits()["test"]
        table, metrics = [], {}
        for r in model:
            right = self.predict(model, te, r).argmax(1) == te.answers
            by = {"all": right}
            for ty in sorted(set(TYPES.values())):
                by[ty] = right[te.types == ty]
            metrics[r] = {k: round(float(v.mean()), 4) for k, v in by.items()}
            for k, v in by.items():
                lo, hi = wilson(float(v.sum()), len(v))
                table.append({"representation": r, "type": k, "accuracy": float(v.mean()), "low": lo, "high": hi,
                              "n": len(v)})
        return self._card_fields(metrics, table, model)

    def _card_fields(self, metrics, table, model):
        from backend.vqa.card import card_fields

        return card_fields(self, metrics, table, model)

    def payload(self, model):
        out = {"state_dict": model.state_dict(), "config": dict(self.config)}
        if self.autoencoder is not None:
            out["autoencoder"] = self.autoencoder.state_dict()
        return out


RECIPES = {"vqa": VQARecipe}
__all__ = ["LABELS", "OBJECT_CENTRIC", "RECIPES", "VQARecipe", "wilson"]
