"""The shipped representation learners: names, loading, and what a learner computes on observations.

A learner (`backend.causal.model.Learner`) maps observations to noise codes e and causal codes
z_hat = s(e); its intervention posterior q(I | e, e~) names the pair's intervened variable.
"""

from __future__ import annotations

import numpy as np

from backend.causal import data as D
from backend.core.cache import cached

LEARNERS = ("dcrl", "vae", "oracle")
DECODER = {"dcrl": "diffusion", "vae": "gaussian"}
DEFAULT_KIND = "linear"
DEFAULT_SCM_SEED = 0
N_TRAIN = 5000     # weakly supervised training pairs of the shipped learners
TRAIN_SEED = 11    # data seed of the training pairs; EVAL_SEED: held-out pairs (never seen in training)
EVAL_SEED = 999


def checkpoint_name(learner: str, observation: str = "vector") -> str:
    return f"causal-{learner}" + ("-image" if observation == "image" else "")


def default_scm() -> D.SCM:
    """The SCM of the default graph, the one the shipped learners are trained on."""
    return D.make_scm(D.default_adjacency(), DEFAULT_KIND, seed=DEFAULT_SCM_SEED)


def is_default(adjacency, kind: str, scm_seed: int = DEFAULT_SCM_SEED) -> bool:
    a, d0 = np.asarray(adjacency), D.default_adjacency()
    return a.shape == d0.shape and np.array_equal(a, d0) and kind == DEFAULT_KIND and int(scm_seed) == DEFAULT_SCM_SEED


def shipped_available(learner: str, observation: str = "vector", directory=None) -> bool:
    from backend.core.registry import CHECKPOINT_DIR

    folder = CHECKPOINT_DIR if directory is None else directory
    return (folder / f"{checkpoint_name(learner, observation)}.pt").exists()


def uses_shipped(adjacency, kind: str, learner: str, observation: str = "vector") -> bool:
    """True when `run_pipeline` answers from a shipped checkpoint (or the true latents), without training."""
    return learner == "oracle" or (is_default(adjacency, kind) and shipped_available(learner, observation))


def build_learner(config: dict):
    """An untrained Learner with the architecture a config names (d, x_dim, decoder, observation, width)."""
    from backend.causal.model import Learner

    return Learner(int(config["d"]), int(config["x_dim"]), config["decoder"], config["observation"],
                   int(config["width"]))


def load_learner(learner: str = "dcrl", observation: str = "vector", directory=None):
    """(model, config, card) of a shipped learner, cached per process; CheckpointError when not trained.
    `directory`: another checkpoint folder (default: the registry's)."""
    return _load(checkpoint_name(learner, observation), None if directory is None else str(directory))


@cached
def _load(name: str, directory: str | None):
    from backend.core import configure_threads, load_checkpoint

    configure_threads()
    payload, card = load_checkpoint(name, directory=directory)
    config = payload["config"]
    model = build_learner(config)
    model.load_state_dict(payload["state_dict"] if "state_dict" in payload else payload["state"])
    model.eval()
    return model, config, card


def prepare(x: np.ndarray, observation: str):
    """Observations -> float tensor: vectors as they are, images scaled to [-1,1] channel-first."""
    import torch

    if observation == "image":
        return torch.as_tensor(np.asarray(x), dtype=torch.float32).permute(0, 3, 1, 2) / 127.5 - 1
    return torch.as_tensor(np.asarray(x), dtype=torch.float32)


def make_training_pairs(scm: D.SCM, observation: str, n: int, seed: int) -> dict:
    p = scm.pairs(n, seed=seed)
    p["x"] = D.observe(p["z"], scm, observation)
    p["x_tilde"] = D.observe(p["z_tilde"], scm, observation)
    return p


def encode(model, x: np.ndarray, observation: str, batch: int = 1000):
    """(noise codes, causal codes) of observations, numpy float (n,d) each."""
    import torch

    device = next(model.parameters()).device
    outs_e, outs_z = [], []
    with torch.no_grad():
        for s in range(0, len(x), batch):
            mu, _ = model.encode(prepare(x[s:s + batch], observation).to(device))
            outs_e.append(mu.cpu().numpy())
            outs_z.append(model.causal(mu).cpu().numpy())
    return np.concatenate(outs_e).astype(float), np.concatenate(outs_z).astype(float)


def infer_targets(model, e1: np.ndarray, e2: np.ndarray) -> np.ndarray:
    """The intervened code dimension of each pair (-1: none), the argmax of q(I | e, e~)."""
    import torch

    device = next(model.parameters()).device
    with torch.no_grad():
        q = model.intervention_posterior(torch.as_tensor(e1, dtype=torch.float32, device=device),
                                         torch.as_tensor(e2, dtype=torch.float32, device=device)).cpu().numpy()
    return q.argmax(1) - 1
