"""Recipes of the shipped Slot Attention checkpoints on `backend.core.training` (`python -m backend.train slots-sprites`).

Unsupervised: reconstruction MSE on a fixed pool of generated scenes with random left-right flips; no labels. Every
phase has its own warm-up + cosine decay (to 5 % of its rate) and gradient-norm clipping at 1.0.

slots-sprites (`SlotsSprites.phases`):
  base       11000 steps, batch 32, a 5000-scene pool, lr 4e-4
  grow        8000 steps: the decoder gains two full-resolution residual blocks, identity-initialised, so the grown
             network computes what the base one did (`grow_model`); a fresh optimiser
  scale      20000 steps, batch 128, a 50000-scene pool (its first 5000 scenes are the base pool)
  sharpen     4000 steps, batch 32, + 0.005 x the alpha masks' per-pixel entropy (`losses.mask_entropy`)
  distill-1..3  3000, 1500, 3000 steps, + 0.02 x the KL to the masks of a frozen teacher (the best snapshot when the
             round starts) averaged over 8 test-time passes, on the first 6000 pool scenes (`losses.distill_loss`)
slots-textured (`SlotsTextured.phases`) starts from slots-sprites' weights: base 4000 steps (batch 128, 50000 textured
scenes), sharpen 1500, one distillation round of 2000 (teacher readout: 5 iterations, duplicates merged at 0.7).

Snapshots are scored on 256 validation scenes by their best readout's FG-ARI + mIoU (`evaluate.validation_scores`)
and the best one ships; its readout (attention iterations x duplicate-slot merging) is chosen on the same scenes
and stored in the checkpoint's "evaluation" entry, which `load_model` reads.
"""

from __future__ import annotations

import copy
import math

import numpy as np

from backend.core.recipe import Phase, Recipe
from backend.slots.data import TEST_SEED, TRAIN_SEED_BASE
from backend.slots.evaluate import VAL_SEED, held_out, validation_scores
from backend.slots.losses import reconstruction_loss
from backend.slots.report import card_fields

PAPER = "Locatello et al., Object-Centric Learning with Slot Attention (NeurIPS 2020)"
PROBE_SEED = 30_000
VARIED_SEED = TRAIN_SEED_BASE + 500_000  # training scenes of the "varied" ranges (seed VARIED_SEED + run seed)
# a model small enough for a 20-step smoke run and its evaluation in seconds
TINY_MODEL = {"resolution": 16, "enc_ch": 8, "enc_layers": 2, "slot_dim": 16, "mlp_hidden": 16, "dec_ch": 8,
              "dec_init": 8, "num_slots": 3, "dec_refine": 0}
SMOKE = {"model": TINY_MODEL, "grown": {"dec_refine": 1}, "pool": 16, "pool_large": 24, "distill_pool": 16,
         "batch": 4, "batch_large": 6, "n_val": 6, "n_test": 6, "n_probe": [20, 10], "passes": 2}


def split_steps(steps: int, lengths: list[int]) -> list[int]:
    """`steps` split over phases in proportion to their default `lengths` (largest remainders first); every phase
    gets at least one step when there are enough."""
    total = sum(lengths)
    raw = [steps * n / total for n in lengths]
    out = [int(r) for r in raw]
    if steps >= len(lengths):
        out = [max(1, n) for n in out]
    while sum(out) > steps:
        out[out.index(max(out))] -= 1
    by_remainder = sorted(range(len(raw)), key=lambda i: raw[i] - int(raw[i]), reverse=True)
    for i in range(steps - sum(out)):
        out[by_remainder[i % len(out)]] += 1
    return out


def grow_model(net, config: dict):
    """A network of `config` holding `net`'s weights; its extra residual blocks start as the identity (their last
    conv is zero), so it computes what `net` did."""
    from backend.slots.model import SlotAttentionAE

    grown = SlotAttentionAE(config)
    state = grown.state_dict()
    state.update(net.state_dict())
    grown.load_state_dict(state)
    return grown


class SlotsRecipe(Recipe):
    """What both checkpoints share: the data, the loss, snapshots, the teacher of the distillation rounds and the
    held-out evaluation. Subclasses give the phases."""

    paper = PAPER
    variant = "sprites"
    save_every = 100
    validate_every = 50  # each phase validates at its own `validate_every` (a multiple of this)
    keep_best = True
    log_every = 20
    smoke = SMOKE

    def __init__(self, **overrides):
        super().__init__(**overrides)
        self.total_steps = self.default_steps
        self.teacher_state = None  # the current distillation round's teacher weights
        self.best_state, self.best_score = None, -math.inf  # the best snapshot so far (the next teacher)
        self._pools: dict = {}  # pool size -> uint8 images (N, R, R, 3)
        self._mixed: dict = {}  # pool size -> a standard + varied pool (`train_dist="mix"`)
        self._device_pools: dict = {}  # pool size -> uint8 tensor (N, 3, R, R) on the training device
        self._teacher = None  # float16 masks of the distillation pool
        self._validation = None
        self.base_training = None  # a fine-tune's starting weights' training record (`_init_from`)

    @property
    def data(self) -> str:
        c = self.config
        res = self.model_config()["resolution"]
        text = (f"generated {self.variant} scenes at {res}x{res}: 2-4 objects (square, circle, triangle, heart), "
                f"20-40 % of the side; training pool up to {c['pool_large']} scenes (seed {TRAIN_SEED_BASE}+)")
        if c.get("train_dist") == "mix":
            text += (f", then a fine-tune (train_dist='mix') on {c['finetune_pool'] - c['finetune_pool'] // 2} of them "
                     f"+ {c['finetune_pool'] // 2} 'varied' scenes (1-4 objects, 15-45 %, wider colours and "
                     f"backgrounds, rotations, outlines, aliasing; seed {VARIED_SEED}+)")
        val = " + ".join(f"{c['n_val']} {d}" for d in c.get("val_dists", ["standard"]))
        return (f"{text}; validation {val} (seed {VAL_SEED}, every choice), test {c['n_test']} (seed {TEST_SEED}, "
                f"once) and {c['n_test']} shifted test scenes (seed {TEST_SEED}, wider ranges than training)")

    @property
    def title(self) -> str:
        return f"Slot Attention on generated {self.variant} scenes"

    def model_config(self, phase: Phase | None = None) -> dict:
        from backend.slots.model import DEFAULT_CONFIG

        grown = phase is not None and phase.options.get("grown", False)
        return {**DEFAULT_CONFIG, **self.config["model"], **(self.config["grown"] if grown else {})}

    def train_phase(self, name: str, steps: int, lr: float, warmup: int, batch: int, pool: int,
                    validate_every: int, grown: bool = True, weights: dict | None = None,
                    teacher: dict | None = None) -> Phase:
        return Phase(name, steps, batch=batch, lr=lr, warmup=warmup, final_lr_frac=0.05, grad_clip=1.0,
                     weights=weights or {}, options={"pool": pool, "validate_every": validate_every,
                                                     "grown": grown, "teacher": teacher})

    # -- the model ------------------------------------------------------------------------------------
    def build(self, ctx):
        from backend.slots.model import SlotAttentionAE

        return SlotAttentionAE(self.model_config(ctx.phase))

    def on_phase_start(self, model, ctx):
        """Grow the decoder where the phase's architecture is the grown one, start from `init_from`'s weights at
        step 0, and make the round's teacher masks in a distillation phase."""
        want = self.model_config(ctx.phase)
        new = grow_model(model, want) if model.config != want else None
        if ctx.step == 0 and self.config.get("init_from"):
            self._init_from(new or model)
        if self.config.get("finetune") and self.base_training is None:  # also on resume
            self.base_training = self._base_record()
        teacher = ctx.phase.options.get("teacher")
        self._teacher = self._teacher_masks(new or model, ctx, teacher) if teacher else None
        return new

    def _init_from(self, net) -> None:
        from backend.core import load_checkpoint

        payload, _ = load_checkpoint(self.config["init_from"])
        if {**net.config, **payload["config"]} != net.config:
            raise ValueError(f"{self.config['init_from']} was trained with another model config; cannot start "
                             f"{self.name} from it.")
        net.load_state_dict(payload["state_dict"])

    def _base_record(self) -> dict:
        """The training record of the weights a fine-tune starts from, kept beside the fine-tune's."""
        from backend.core import load_checkpoint

        payload, card = load_checkpoint(self.config["init_from"], map_location="cpu")
        training = payload.get("training") or {}
        return {"steps": int(card.get("steps", 0)), "snapshots": training.get("snapshots", []),
                "selected_step": training.get("selected_step")}

    def _teacher_masks(self, net, ctx, teacher: dict):
        from backend.slots.model import SlotAttentionAE
        from backend.slots.pool import teacher_masks

        if ctx.phase_step == 0 or self.teacher_state is None:  # a new round: the best snapshot so far teaches
            # (under torchrun only rank 0 validates, so every rank takes the current, synchronised weights)
            best = self.best_state if ctx.world == 1 else None
            source = best if best is not None else net.state_dict()
            self.teacher_state = {k: v.detach().cpu().clone() for k, v in source.items()}
        frozen = SlotAttentionAE(net.config)
        frozen.load_state_dict({**frozen.state_dict(), **self.teacher_state})
        images = self._images(ctx.phase.options["pool"], ctx.seed)
        return teacher_masks(frozen.to(ctx.device), ctx.device, images, teacher["passes"], teacher["iters"],
                             teacher.get("merge"))

    def payload(self, model) -> dict:
        out = {"state_dict": model.state_dict(), "config": dict(model.config)}
        if self.base_training is not None:
            out["base_training"] = self.base_training
        return out

    def load_shipped(self, device):
        from backend.core import load_checkpoint
        from backend.slots.model import SlotAttentionAE

        payload, _ = load_checkpoint(self.name, map_location=device)
        net = SlotAttentionAE(payload["config"])
        net.load_state_dict(payload["state_dict"])
        return net.to(device)

    # -- data and loss --------------------------------------------------------------------------------
    def _images(self, n: int, seed: int):
        """The first `n` scenes of the training pool (a slice of a larger pool already drawn); with
        `train_dist="mix"` half of them standard, half drawn from the "varied" ranges (seed VARIED_SEED + seed)."""
        from backend.slots.pool import training_pool

        if self.config.get("train_dist", "standard") == "mix":
            if n not in self._mixed:
                res = self.model_config()["resolution"]
                varied = training_pool(self.name, n // 2, VARIED_SEED + seed, self.variant, res, dist="varied")
                standard = training_pool(self.name, n - n // 2, TRAIN_SEED_BASE + seed, self.variant, res)
                self._mixed[n] = np.concatenate([standard, varied])
            return self._mixed[n]
        larger = [m for m in self._pools if m >= n]
        if larger:
            return self._pools[min(larger)][:n]
        res = self.model_config()["resolution"]
        self._pools[n] = training_pool(self.name, n, TRAIN_SEED_BASE + seed, self.variant, res)
        return self._pools[n]

    def batch(self, ctx):
        import torch

        n = ctx.phase.options["pool"]
        if (n, ctx.device) not in self._device_pools:
            x = torch.from_numpy(self._images(n, ctx.seed)).permute(0, 3, 1, 2).contiguous()
            self._device_pools = {(n, ctx.device): x.to(ctx.device)}  # uint8 on the device: no copy per step
        pool = self._device_pools[(n, ctx.device)]
        idx = torch.from_numpy(ctx.rng.integers(0, n, ctx.batch_size)).to(pool.device)
        flip = torch.from_numpy(ctx.rng.random(ctx.batch_size) < 0.5).to(pool.device)[:, None, None, None]
        x = pool[idx].float().div(127.5).sub(1)
        x = torch.where(flip, x.flip(-1), x)
        teacher = None
        if self._teacher is not None:  # the teacher's masks of these scenes, mirrored with them
            t = self._teacher[idx].float()
            teacher = torch.where(flip, t.flip(-1), t)
        return x, teacher

    def loss(self, model, batch, ctx):
        x, teacher = batch
        w = ctx.phase.weights
        return reconstruction_loss(model, x, teacher, w.get("entropy", 0.0), w.get("distill", 0.0))

    # -- snapshots and evaluation ---------------------------------------------------------------------
    def validate(self, model, ctx) -> dict:
        from backend.slots.data import make_scenes
        from backend.slots.inference import SlotModel
        from backend.slots.probe import probe_scores

        done = ctx.step + 1
        if done % ctx.phase.options.get("validate_every", self.validate_every) and done != self.total_steps:
            return {}
        dists = self.config.get("val_dists", ["standard"])
        if self._validation is None:
            self._validation = {d: make_scenes(self.config["n_val"], seed=VAL_SEED, variant=self.variant,
                                               res=model.resolution, dist=d)[:2] for d in dists}
        scores = validation_scores(model, ctx.device, *self._validation["standard"])
        for d in dists[1:]:  # other validation distributions add to the snapshot score
            more = validation_scores(model, ctx.device, *self._validation[d])
            scores.update({f"{d}_{k}": v for k, v in more.items()})
            scores["score"] += more["score"]
        if not self.config.get("finetune"):
            n_fit, n_score = self.config["n_probe"]
            probe = probe_scores(SlotModel(model, ctx.device), self.variant, n_fit, n_score, seed=PROBE_SEED)
            scores.update({f"probe_{k}": v for k, v in probe.items()})
        if scores["score"] > self.best_score:
            self.best_score = scores["score"]
            self.best_state = copy.deepcopy({k: v.detach().cpu() for k, v in model.state_dict().items()})
        return scores

    def evaluate(self, model, ctx) -> dict:
        import torch

        from backend.slots.inference import SlotModel
        from backend.slots.model import SlotAttentionAE
        from backend.slots.probe import probe_scores

        c = self.config
        result = held_out(model, ctx.device, self.variant, c["n_val"], c["n_test"], c["passes"],
                          val_dists=tuple(c.get("val_dists", ["standard"])))
        torch.manual_seed(0)
        untrained = SlotAttentionAE(model.config).to(ctx.device)
        n_fit, n_score = c["n_probe"]
        result["probe"] = {key: probe_scores(SlotModel(net, ctx.device), self.variant, n_fit, n_score,
                                             seed=PROBE_SEED) for key, net in (("trained", model),
                                                                               ("untrained", untrained))}
        return card_fields(result, self.variant, c, int(model.config["iters"]), self.targets(result))

    def targets(self, result: dict) -> list[dict]:
        m, sh = result["metrics"], result["intervals"]["shifted"]
        return [{"metric": "fg_ari", "threshold": 0.9, "value": m["fg_ari"], "direction": ">="},
                {"metric": "miou", "threshold": 0.75, "value": m["miou"], "direction": ">="},
                {"metric": "shifted_fg_ari", "threshold": 0.85, "value": sh["shipped"]["fg_ari"], "direction": ">="},
                {"metric": "shifted_lead_over_kmeans", "threshold": 0.0,
                 "value": sh["shipped"]["fg_ari"] - sh["kmeans"]["fg_ari"], "direction": ">="}]

    def extra_state(self) -> dict:
        return {"teacher_state": self.teacher_state, "best_state": self.best_state, "best_score": self.best_score}

    def load_extra_state(self, state: dict) -> None:
        self.teacher_state = state.get("teacher_state")
        self.best_state = state.get("best_state")
        self.best_score = state.get("best_score", -math.inf)


FINETUNE_KEYS = ("finetune", "init_from", "train_dist", "val_dists")
BASE_COMMAND = " && ".join(
    ["python -m backend.train slots-sprites --steps 2400 --seed 0"]
    + [f"python -m backend.train slots-sprites --steps {n} --seed 0 --resume"
       for n in (8000, 11000, 14600, 19000, 31500, 39000, 43000, 46000, 47500, 50500)])


# the shipped fine-tune's first launch: (--steps, the step of the saved state it was stopped after) for time
FINETUNE_FIRST = (260, 100)


class SlotsSprites(SlotsRecipe):
    name = "slots-sprites"
    variant = "sprites"
    default_steps = 50_500
    config = {"model": {"dec_refine": 0}, "grown": {"dec_refine": 2}, "init_from": None,
              "pool": 5000, "pool_large": 50_000, "distill_pool": 6000, "batch": 32, "batch_large": 128,
              "n_val": 256, "n_test": 1000, "n_probe": [300, 150], "passes": 1,  # passes > 1: an averaged test row
              "finetune": False, "finetune_pool": 8000, "finetune_batch": 16, "train_dist": "standard",
              "val_dists": ["standard"]}
    # the run that made the shipped weights: the 50500-step chain on standard scenes, then the fine-tune

    def command(self, steps: int, seed: int) -> str:
        if not self.config.get("finetune"):
            return super().command(steps, seed)
        sets = " ".join(f'--set "{k}={self.config[k]!r}"' for k in FINETUNE_KEYS)
        run = f"python -m backend.train {self.name} --steps {{}} --seed {seed} {sets}"
        first = FINETUNE_FIRST if FINETUNE_FIRST and FINETUNE_FIRST[1] < steps < FINETUNE_FIRST[0] else None
        if first is None:
            return f"{BASE_COMMAND} && {run.format(steps)}"
        # the first launch was stopped after its state at step first[1] was saved, then resumed with fewer steps
        return f"{BASE_COMMAND} && {run.format(first[0])} && {run.format(steps)} --resume"

    def phases(self, steps: int) -> list[Phase]:
        self.total_steps = steps
        c, p = self.config, self.train_phase
        if c.get("finetune"):  # from init_from's weights: the mixed pool, the entropy term of `sharpen`
            return [p("vary", steps, 2e-4, 30, c["finetune_batch"], c["finetune_pool"], max(50, 50 * round(steps / 100)),
                      weights={"entropy": 0.005})]
        n = split_steps(steps, [11_000, 8000, 20_000, 4000, 3000, 1500, 3000])
        sharp, distill = {"entropy": 0.005}, {"distill": 0.02}
        teacher = {"passes": 8, "iters": 4, "merge": None}
        return [p("base", n[0], 4e-4, 300, c["batch"], c["pool"], 300, grown=False),
                p("grow", n[1], 3e-4, 100, c["batch"], c["pool"], 300),
                p("scale", n[2], 3e-4, 200, c["batch_large"], c["pool_large"], 2500),
                p("sharpen", n[3], 5e-5, 200, c["batch"], c["pool_large"], 500, weights=sharp),
                p("distill-1", n[4], 5e-5, 100, c["batch"], c["distill_pool"], 500, weights=distill, teacher=teacher),
                p("distill-2", n[5], 5e-5, 100, c["batch"], c["distill_pool"], 500, weights=distill, teacher=teacher),
                p("distill-3", n[6], 3e-5, 100, c["batch"], c["distill_pool"], 500, weights=distill, teacher=teacher)]


class SlotsTextured(SlotsRecipe):
    name = "slots-textured"
    variant = "textured"
    default_steps = 7500
    config = {"model": {"dec_refine": 2}, "grown": {}, "init_from": "slots-sprites",
              "pool": 50_000, "pool_large": 50_000, "distill_pool": 6000, "batch": 32, "batch_large": 128,
              "n_val": 256, "n_test": 1000, "n_probe": [300, 150], "passes": 1}
    smoke = {**SMOKE, "init_from": None}

    def phases(self, steps: int) -> list[Phase]:
        self.total_steps = steps
        c, p = self.config, self.train_phase
        n = split_steps(steps, [4000, 1500, 2000])
        teacher = {"passes": 8, "iters": 5, "merge": 0.7}
        return [p("base", n[0], 4e-4, 200, c["batch_large"], c["pool_large"], 1000),
                p("sharpen", n[1], 5e-5, 200, c["batch"], c["pool_large"], 250, weights={"entropy": 0.005}),
                p("distill", n[2], 5e-5, 100, c["batch"], c["distill_pool"], 500, weights={"distill": 0.02},
                  teacher=teacher)]

    def targets(self, result: dict) -> list[dict]:
        m, km = result["metrics"], result["baselines"]["kmeans"]
        return [{"metric": "fg_ari", "threshold": 0.75, "value": m["fg_ari"], "direction": ">="},
                {"metric": "lead_over_kmeans", "threshold": 0.2, "value": m["fg_ari"] - km["fg_ari"],
                 "direction": ">="}]


RECIPES = {"slots-sprites": SlotsSprites, "slots-textured": SlotsTextured}
GROUPS = {"slots": ["slots-sprites", "slots-textured"]}
