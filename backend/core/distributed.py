"""torchrun support for the training loop: rank and world size, process group, the module DDP wraps.

`torchrun --nproc_per_node=N -m backend.train NAME ...` sets RANK and WORLD_SIZE; the loop then wraps
the recipe's loss in DistributedDataParallel (gloo on CPU, nccl on CUDA) and rank 0 alone writes files.
"""

from __future__ import annotations

import os


def dist_info() -> tuple[int, int]:
    """(rank, world size) from torchrun's environment; (0, 1) when run alone."""
    return int(os.environ.get("RANK", 0)), int(os.environ.get("WORLD_SIZE", 1))


def init_distributed(device) -> bool:
    import torch.distributed as dist

    _, world = dist_info()
    if world <= 1:
        return False
    if device.type == "cpu":
        import torch

        torch.set_num_threads(max(1, (os.cpu_count() or 1) // world))
    if not dist.is_initialized():
        dist.init_process_group(backend="nccl" if device.type == "cuda" else "gloo")
    return True


def loss_module(model, recipe):
    """Model + the recipe's loss as one nn.Module, so DDP sees every forward through its own __call__
    (a recipe's loss may call any of the model's methods)."""
    import torch

    class LossModule(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.model = model

        def forward(self, batch, ctx):
            return recipe.loss(self.model, batch, ctx)

    return LossModule()
