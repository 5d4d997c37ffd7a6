"""Recipe for `video-bouncing`: RaMViD random-mask training (Höppe et al., TMLR 2022) on bouncing-sprite
clips, through the shared loop (`backend.core.training`), then the held-out evaluation for its card.

`python -m backend.train video-bouncing [--steps N] [--seed S] [--resume] [--set KEY=VALUE ...]`
"""

from __future__ import annotations

from backend.core.cards import rounded
from backend.core.training import Context, Phase, Recipe

NAME = "video-bouncing"


def train_clip_seed(seed: int, step: int, rank: int = 0, world: int = 1) -> int:
    """Training clips come from seeds >= 2**31, disjoint from page seeds and the held-out EVAL_SEED ones;
    under torchrun each rank draws its own clips."""
    return 2**31 + int(seed) * 10**7 + int(step) * int(world) + int(rank)


class VideoBouncing(Recipe):
    name = NAME
    title = "Video infill: random-mask video diffusion on bouncing sprites"
    paper = ("Höppe, Mehrjou, Bauer, Nielsen, Dittadi: Diffusion Models for Video Prediction and Infilling "
             "(TMLR 2022), https://arxiv.org/abs/2206.07696")
    data = ("bouncing sprites (1-3 disks/squares/diamonds, 8 colours, radius 2.5-4.5 px, speed 0.8-2.5 px/frame, "
            "wall bounces), 12 frames of 32x32 RGB; fresh training clips from seeds >= 2**31 (one batch per step); "
            "validation clips from seed 10000000, test clips from seed 40000000")
    config = {
        "num_frames": 12, "resolution": 32, "channels": 32, "mult": [1, 2, 2], "attention": True, "patch": 2,
        "mask_channel": True,  # RaMViD: False (whole frames given; no per-pixel mask input)
        "p_region": 0.15,  # share of training masks that hide a rectangle; RaMViD: 0 (needs mask_channel)
        "mask_mix": "ramvid",  # RaMViD's random frame subsets; "tasks": 60 % strides/prefixes/ends (not in the paper)
        "p_uncond": 0.25,  # RaMViD README: 0.25 (BAIR, Kinetics-600)
        "batch": 8, "lr": 1e-3, "warmup": 200, "final_lr_frac": 0.1,
        "init_from": None,  # a checkpoint whose EMA weights start training (fine-tune); None: from scratch
        "finetune_lr": 1e-4,  # constant learning rate of a fine-tune (init_from set)
        "n_val": 64, "val_every": 0,  # > 0: fine-tune snapshots scored on n_val validation clips (VAL_SEED)
        "n_eval": 256, "eval_steps": 4, "best_of": 4, "n_best": 8,
    }
    default_steps = 20000
    ema = 0.999
    save_every = 200
    smoke = {"channels": 8, "mult": [1, 2], "attention": False, "batch": 4, "n_eval": 2, "eval_steps": 2,
             "best_of": 2, "n_best": 1, "n_val": 2}

    def __init__(self, **overrides):
        super().__init__(**overrides)
        if self.config["init_from"] and self.config["val_every"]:  # keep the best snapshot on validation clips
            self.validate_every, self.keep_best = int(self.config["val_every"]), True

    def build(self, ctx: Context):
        from backend.video.api import build_net

        if self.config["p_region"] > 0 and not self.config["mask_channel"]:
            raise ValueError("Rectangle masks (p_region > 0) need the mask channel: set p_region=0 as well.")
        net = build_net(self.config)
        if self.config["init_from"]:
            import torch

            net.load_state_dict(torch.load(self.config["init_from"], map_location="cpu", weights_only=False)["ema"])
        return net

    def command(self, steps: int, seed: int) -> str:
        if not self.config["init_from"]:
            return super().command(steps, seed)
        return (f"python -m backend.train video-bouncing --steps 20000 --seed 0 --set mask_mix=tasks --set p_uncond=0.1"
                f" && cp assets/checkpoints/video-bouncing.pt runs/video-bouncing-tasks.pt && python -m backend.train "
                f"video-bouncing --steps {steps} --seed {seed} --set init_from=runs/video-bouncing-tasks.pt")

    def phases(self, steps: int) -> list[Phase]:
        """A constant learning rate after warm-up for the first fifth, then three decays to 0.1x, each
        restarting a little lower (1.0x, 0.7x, 0.82x): the shipped run's resumed stages, with cosine
        decays where the shipped stages decayed linearly."""
        c = self.config
        if c["init_from"]:
            return [Phase("finetune", steps, c["batch"], c["finetune_lr"], warmup=min(50, steps), schedule="constant",
                          grad_clip=1.0)]
        lr, end, clip = c["lr"], c["final_lr_frac"], 1.0
        first = max(1, steps // 5)
        sizes = [first, first, first, steps - 3 * first]
        return [Phase("constant", sizes[0], c["batch"], lr, warmup=min(c["warmup"], sizes[0]), schedule="constant",
                      grad_clip=clip),
                Phase("decay-1", sizes[1], c["batch"], lr, final_lr_frac=end, grad_clip=clip),
                Phase("decay-2", sizes[2], c["batch"], 0.7 * lr, final_lr_frac=end / 0.7, grad_clip=clip),
                Phase("decay-3", sizes[3], c["batch"], 0.82 * lr, final_lr_frac=end / 0.82, grad_clip=clip)]

    def batch(self, ctx: Context):
        import torch

        from backend.video.api import to_tensor
        from backend.video.data import make_videos
        from backend.video.diffusion import sample_masks

        c, n = self.config, ctx.batch_size
        T, R = c["num_frames"], c["resolution"]
        clips = make_videos(n, seed=train_clip_seed(ctx.seed, ctx.step, ctx.rank, ctx.world), num_frames=T, res=R)
        masks = sample_masks(n, T, R, ctx.rng, c["p_uncond"], c["p_region"], c["mask_mix"])
        return to_tensor(clips, ctx.device), torch.as_tensor(masks, device=ctx.device)

    def loss(self, model, batch, ctx: Context):
        from backend.video.diffusion import masked_loss

        x0, mask = batch
        return masked_loss(model, x0, mask)

    def validate(self, model, ctx: Context) -> dict:
        """Mean PSNR over the three tasks on `n_val` validation clips (VAL_SEED, never the test clips)."""
        from backend.video.api import VideoModel
        from backend.video.data import VAL_SEED
        from backend.video.evaluation import evaluate_heldout

        c = self.config
        video = VideoModel(model, c["num_frames"], c["resolution"], device=ctx.device)
        m = evaluate_heldout(video, n_eval=c["n_val"], steps=c["eval_steps"], clip_seed=VAL_SEED, best_of=0,
                             scores=("psnr",))["metrics"]
        return {**{k: v for k, v in m.items() if k.endswith("_psnr")},
                "score": (m["interp4_psnr"] + m["predict4_psnr"] + m["ends2_psnr"]) / 3}

    def evaluate(self, model, ctx: Context) -> dict:
        from backend.video.api import VideoModel
        from backend.video.evaluation import evaluate_heldout

        c = self.config
        video = VideoModel(model, c["num_frames"], c["resolution"], device=ctx.device)
        out = evaluate_heldout(video, n_eval=c["n_eval"], steps=c["eval_steps"], best_of=c["best_of"],
                               n_best=c["n_best"])
        return card_fields(out, c)

    def payload(self, model) -> dict:
        c = self.config
        return {"config": dict(c), "ema": model.state_dict(), "num_frames": c["num_frames"],
                "resolution": c["resolution"]}

    def load_shipped(self, device):
        from backend.core.registry import load_checkpoint
        from backend.video.api import build_net

        payload, _ = load_checkpoint(self.name, map_location=device)
        net = build_net(payload["config"])
        net.load_state_dict(payload["ema"])
        return net.to(device)


def card_fields(out: dict, c: dict) -> dict:
    """The card's metrics, baselines, targets, headline, readout and limitations from `evaluate_heldout`."""
    from backend.video.data import TEST_SEED, VAL_SEED

    m, b = rounded(out["metrics"]), {k: rounded(v) for k, v in out["baselines"].items()}
    targets = [  # every 4th frame given: at least 1 dB above linear interpolation
        {"metric": "interp4_psnr", "threshold": round(b["linear"]["interp4_psnr"] + 1.0, 4), "value": m["interp4_psnr"]},
        {"metric": "interp4_centroid_px", "threshold": b["linear"]["interp4_centroid_px"],
         "value": m["interp4_centroid_px"], "direction": "<="},
        {"metric": "predict4_psnr", "threshold": b["last"]["predict4_psnr"], "value": m["predict4_psnr"]},
        {"metric": "ends2_psnr", "threshold": b["linear"]["ends2_psnr"], "value": m["ends2_psnr"]},
    ]
    return {
        "metrics": m, "baselines": b, "targets": [{"direction": ">=", **t} for t in targets],
        "headline": {"metric": "interp4_psnr", "label": "PSNR, every 4th frame given (dB)", "value": m["interp4_psnr"],
                     "baseline": b["linear"]["interp4_psnr"], "baseline_label": "linear interpolation"},
        "readout": (f"EMA weights, DDIM {c['eval_steps']} steps, eta 0, seed 0, on {c['n_eval']} test clips (seed "
                    f"{TEST_SEED}, evaluated once); PSNR, SSIM and centroid error on generated frames only (predict4: "
                    "frames 4-7 with 0-3 given); *_gain_vs_*: paired per-clip PSNR gain over the baseline, mean and "
                    f"95 % bootstrap interval over clips; best-of-{c['best_of']} and diversity on the first "
                    f"{c['n_best']} clips, predict4."
                    + (f" Snapshot every {c['val_every']} steps chosen by mean PSNR of the three tasks on "
                       f"{c['n_val']} validation clips (seed {VAL_SEED})." if c.get("init_from") and c["val_every"]
                       else " The final EMA weights, no snapshot selection.")),
        "limitations": [
            "Trained on procedural bouncing sprites only; digits and uploaded videos are out of distribution.",
            "12 frames of 32x32 pixels: larger uploads are centre-cropped and downscaled.",
            "Fewer DDIM steps score higher PSNR with blurrier frames (samples move towards the posterior mean).",
            "Predicted frames lose quality with their distance from the last given frame (per-frame PSNR in the "
            "checkpoint's evaluation entry).",
        ],
        "evaluation": {"per_frame_psnr": out["per_frame_psnr"], "n_eval": c["n_eval"],
                       "sampler": f"DDIM, {c['eval_steps']} steps, eta 0"},
    }


RECIPES = {NAME: VideoBouncing}

__all__ = ["RECIPES", "VideoBouncing", "card_fields", "train_clip_seed"]
