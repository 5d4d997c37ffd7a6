"""Training of CFGen (stage 1: NB autoencoder, stage 2: latent conditional flow matching).

`TRAINERS["cells-pbmc68k"]` trains the shipped model on the training split of pbmc68k and evaluates it
against the per-gene negative-binomial baseline on held-out cells; `fit_model` is the time-budgeted
trainer behind `backend.cells.fit` (uploads in the app).
"""

from __future__ import annotations

import time

import numpy as np
import pandas as pd
import torch

from backend.cells.model import NBAutoencoder, VelocityNet, fit_group_theta, fm_pair
from backend.cells.threads import single_thread
from backend.core.device import get_device
from backend.core.progress import as_progress
from backend.core.registry import load_train_state, save_checkpoint, save_train_state
from backend.core.seed import set_seed

DEFAULT_CONFIG = {
    "ae_hidden": [256, 128], "latent": 10,             # narrower than CFGen's [512, 256] -> 50: see `why`
    "ae_lr": 1e-3, "ae_wd": 1e-5, "ae_batch": 256,     # CFGen trainer defaults, gradient clip 1
    "theta_lr": 3e-2,
    "flow_hidden": 64, "flow_emb": 32, "flow_blocks": 3,
    "flow_lr": 1e-3, "flow_wd": 1e-6, "flow_batch": 256,
    "p_cond": 0.8, "sigma": 1e-4,
    "type_theta": True,  # per-cell-type inverse dispersion (CFGen's covariate_specific_theta), fit after stage 1
    "balanced_cond": True,  # attribute-conditioned rows drawn class-balanced (see flow_train_step)
}


def _rows(x, idx):
    """Dense float32 tensor of rows `idx` of a CSR/dense count matrix."""
    import scipy.sparse as sp

    sub = x[idx]
    sub = sub.toarray() if sp.issparse(sub) else np.asarray(sub)
    return torch.as_tensor(sub, dtype=torch.float32)


class Trainer:
    """Both stages with explicit state, so training can be time-budgeted, checkpointed and resumed."""

    def __init__(self, counts, codes: np.ndarray, n_categories: list[int], config: dict, seed: int = 0,
                 device=None):
        import scipy.sparse as sp

        self.cfg = {**DEFAULT_CONFIG, **config}
        self.device = torch.device(device) if device is not None else torch.device("cpu")
        set_seed(seed)
        self.x = sp.csr_matrix(counts, dtype=np.float32)
        self.dense = None
        if self.x.shape[0] * self.x.shape[1] <= 50_000_000:  # small enough to keep dense on the device
            self.dense = torch.as_tensor(self.x.toarray(), dtype=torch.float32, device=self.device)
        self.codes = torch.as_tensor(np.asarray(codes, dtype=np.int64).reshape(self.x.shape[0], -1),
                                     device=self.device)
        self.k = self.codes.shape[1]
        c = self.cfg
        self.ae = NBAutoencoder(self.x.shape[1], tuple(c["ae_hidden"]), c["latent"]).to(self.device)
        self.flow = VelocityNet(c["latent"], n_categories, c["flow_hidden"], c["flow_emb"], c["flow_blocks"]).to(
            self.device)
        # the per-gene inverse dispersion gets its own, faster learning rate: from theta = 1 at the
        # default lr it is still far from its optimum after a few hundred steps (too many zeros)
        net = [p for n, p in self.ae.named_parameters() if n != "log_theta"]
        self.opt_ae = torch.optim.AdamW([{"params": net}, {"params": [self.ae.log_theta], "lr": c["theta_lr"],
                                                           "weight_decay": 0.0}],
                                        lr=c["ae_lr"], weight_decay=c["ae_wd"])
        self.opt_flow = torch.optim.AdamW(self.flow.parameters(), lr=c["flow_lr"], weight_decay=c["flow_wd"])
        self.gen = torch.Generator().manual_seed(int(seed))
        self.ae_step = 0
        self.flow_step = 0
        self.z = None
        self.latent_mean = None
        self.latent_std = None
        self.ae_losses: list[float] = []
        self.flow_losses: list[float] = []
        self.n_categories = list(n_categories)
        self.log_theta_type = None
        # per attribute: training rows grouped by category (for class-balanced conditioned rows)
        self.members = []
        for i in range(self.k):
            col = self.codes[:, i].cpu()
            order = torch.argsort(col, stable=True)
            counts = torch.bincount(col, minlength=self.n_categories[i])
            present = torch.nonzero(counts).squeeze(1)
            self.members.append((order, torch.cumsum(counts, 0) - counts, counts, present))

    def _batch(self, bs: int) -> torch.Tensor:
        n = self.x.shape[0]
        return torch.randint(0, n, (min(bs, n),), generator=self.gen)

    def ae_train_step(self) -> float:
        self.ae.train()
        idx = self._batch(self.cfg["ae_batch"])
        xb = self.dense[idx.to(self.device)] if self.dense is not None else _rows(self.x, idx.numpy()).to(self.device)
        if xb.shape[0] < 2:
            xb = xb.repeat(2, 1)
        loss = self.ae.loss(xb) / xb.shape[1]
        self.opt_ae.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(self.ae.parameters(), 1.0)
        self.opt_ae.step()
        self.ae_step += 1
        v = loss.item()
        self.ae_losses.append(v)
        return v

    @torch.no_grad()
    def encode_all(self) -> None:
        self.ae.eval()
        zs = []
        for s in range(0, self.x.shape[0], 4096):
            idx = np.arange(s, min(self.x.shape[0], s + 4096))
            xb = self.dense[s : s + len(idx)] if self.dense is not None else _rows(self.x, idx).to(self.device)
            zs.append(self.ae.encode(xb))
        z = torch.cat(zs)
        self.latent_mean = z.mean(0)
        self.latent_std = z.std(0).clamp_min(1e-4)
        self.z = (z - self.latent_mean) / self.latent_std

    def flow_train_step(self) -> float:
        self.flow.train()
        c = self.cfg
        idx = self._batch(c["flow_batch"])
        b = idx.shape[0]
        # stratified ("antithetic") times: one uniform offset, b evenly spaced values, as CFGen
        t0 = torch.rand(1, generator=self.gen).item() / b
        t = (t0 + torch.arange(b, dtype=torch.float32) / b)[torch.randperm(b, generator=self.gen)].to(self.device)
        eps = torch.randn((b, self.z.shape[1]), generator=self.gen).to(self.device)
        # condition on ONE random attribute with probability p_cond, else unconditional (CFGen's scheme)
        mask = torch.zeros(b, self.k, device=self.device)
        if self.k:
            cond = torch.rand(b, generator=self.gen) < c["p_cond"]
            which = torch.randint(0, self.k, (b,), generator=self.gen)
            rows = torch.nonzero(cond).ravel()
            mask[rows.to(self.device), which[rows].to(self.device)] = 1.0
            if c.get("balanced_cond"):
                # rows conditioned on attribute i get a cell of a uniformly drawn category of i: the target of
                # v(x|c_i) depends only on p(z|c_i), which this leaves unchanged, while rare categories get as
                # many updates as common ones; unconditional rows keep the data distribution
                for i, (order, start, counts, present) in enumerate(self.members):
                    r = rows[which[rows] == i]
                    if r.numel():
                        cat = present[torch.randint(0, present.numel(), (r.numel(),), generator=self.gen)]
                        pos = (torch.rand(r.numel(), generator=self.gen) * counts[cat]).long()
                        idx[r] = order[start[cat] + torch.minimum(pos, counts[cat] - 1)]
        idx = idx.to(self.device)
        z1 = self.z[idx]
        xt, ut = fm_pair(z1, t, eps, c["sigma"])
        v = self.flow(xt, t, self.codes[idx], mask)
        loss = ((v - ut) ** 2).mean()
        self.opt_flow.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(self.flow.parameters(), 1.0)
        self.opt_flow.step()
        self.flow_step += 1
        val = loss.item()
        self.flow_losses.append(val)
        return val

    def state(self) -> dict:
        return {"ae": self.ae.state_dict(), "flow": self.flow.state_dict(), "opt_ae": self.opt_ae.state_dict(),
                "opt_flow": self.opt_flow.state_dict(), "gen": self.gen.get_state(), "ae_step": self.ae_step,
                "flow_step": self.flow_step, "ae_losses": self.ae_losses, "flow_losses": self.flow_losses,
                "torch_rng": torch.get_rng_state()}

    def load_state(self, s: dict) -> None:
        self.ae.load_state_dict(s["ae"])
        self.flow.load_state_dict(s["flow"])
        self.opt_ae.load_state_dict(s["opt_ae"])
        self.opt_flow.load_state_dict(s["opt_flow"])
        self.gen.set_state(s["gen"])
        torch.set_rng_state(s["torch_rng"])
        self.ae_step, self.flow_step = int(s["ae_step"]), int(s["flow_step"])
        self.ae_losses, self.flow_losses = list(s["ae_losses"]), list(s["flow_losses"])
        if self.flow_step > 0 or self.ae_step > 0:
            self.encode_all()

    def fit_type_theta(self, max_cells: int = 1024, steps: int = 300, max_seconds: float | None = None) -> None:
        """Per-type inverse dispersions for the first attribute (on up to `max_cells` training cells)."""
        if not (self.cfg.get("type_theta") and self.k):
            return
        n = self.x.shape[0]
        idx = np.sort(torch.randperm(n, generator=self.gen)[:max_cells].numpy()) if n > max_cells else np.arange(n)
        xb = self.dense[idx] if self.dense is not None else _rows(self.x, idx).to(self.device)
        self.log_theta_type = fit_group_theta(self.ae, xb, self.codes[idx, 0], self.n_categories[0], steps=steps,
                                              max_seconds=max_seconds)

    def model_payload(self, var_names, condition_keys, categories, lib_sizes, lib_codes, name: str) -> dict:
        if self.z is None:
            self.encode_all()
        if self.log_theta_type is None:
            self.fit_type_theta()
        extra = {} if self.log_theta_type is None else {"log_theta_type": self.log_theta_type.detach().cpu()}
        return {**extra,
            "name": name, "config": {k: self.cfg[k] for k in ("ae_hidden", "latent", "flow_hidden", "flow_emb",
                                                              "flow_blocks")},
            "var_names": list(var_names), "condition_keys": list(condition_keys),
            "categories": {k: list(v) for k, v in categories.items()},
            "ae": {k: v.detach().cpu() for k, v in self.ae.state_dict().items()},
            "flow": {k: v.detach().cpu() for k, v in self.flow.state_dict().items()},
            "latent_mean": self.latent_mean.cpu(), "latent_std": self.latent_std.cpu(),
            "lib_sizes": torch.as_tensor(np.asarray(lib_sizes, dtype=np.float32)),
            "lib_codes": torch.as_tensor(np.asarray(lib_codes, dtype=np.int64)),
        }


def encode_obs(obs, condition_keys) -> tuple[np.ndarray, dict]:
    cats, codes = {}, []
    for k in condition_keys:
        s = obs[k].astype(str)
        cat = list(obs[k].cat.categories) if hasattr(obs[k], "cat") else sorted(s.unique())
        cat = [str(c) for c in cat if (s == str(c)).any()] or sorted(s.unique())
        cats[k] = cat
        lookup = {c: i for i, c in enumerate(cat)}
        codes.append(s.map(lookup).to_numpy())
    arr = np.stack(codes, 1).astype(np.int64) if codes else np.zeros((len(obs), 0), np.int64)
    return arr, cats


def fit_model(adata, condition_keys=(), max_seconds: float = 120, seed: int = 0, progress=None,
              test_frac: float = 0.1, ae_fraction: float = 0.6, max_ae_steps: int = 3000,
              max_flow_steps: int = 12000, device=None, config: dict | None = None):
    """Time-budgeted CFGen training on an AnnData of counts; returns a `CellsModel`.

    A stratified `test_frac` of the cells (by the first attribute) is held out and recorded in
    `model.split`, so the app can evaluate on cells the model never saw.
    """
    from backend.cells.api import CellsModel
    from backend.cells.data import prepare_counts, split_indices

    if max_seconds is None or not np.isfinite(max_seconds) or max_seconds <= 0:
        raise ValueError("The time budget must be a positive number of seconds.")
    keys = list(condition_keys or [])
    t_start = time.time()
    p = as_progress(progress)
    p.update(0, 1000, "preparing counts")
    data = prepare_counts(adata, keys)
    labels = data.obs[keys[0]].astype(str).to_numpy() if keys else np.zeros(data.n_obs, dtype=str)
    if data.n_obs >= 50 and test_frac > 0:
        tr, te = split_indices(labels, test_frac, seed=seed)
    else:
        tr, te = np.arange(data.n_obs), np.arange(0)
    train = data[tr]
    codes, cats = encode_obs(train.obs, keys)
    dev = get_device(device)
    tr_ = Trainer(train.X, codes, [len(cats[k]) for k in keys], config or {}, seed=seed, device=dev)
    budget_ae = max_seconds * ae_fraction - (time.time() - t_start)
    t0 = time.time()
    min_steps = 10  # a few steps even when preparation ate the budget, so the model is never untrained
    while tr_.ae_step < max_ae_steps and (time.time() - t0 < budget_ae or tr_.ae_step < min_steps):
        loss = tr_.ae_train_step()
        if tr_.ae_step % 5 == 0:
            frac = min(1.0, (time.time() - t_start) / max_seconds)
            p.update(int(1000 * frac), 1000, f"autoencoder step {tr_.ae_step}, NB loss/gene {loss:.3f}")
    tr_.encode_all()
    t1 = time.time()
    with single_thread():  # the flow net is tiny whatever the data size: extra threads only spin
        while tr_.flow_step < max_flow_steps and (time.time() - t_start < max_seconds * 0.93
                                                  or tr_.flow_step < 2 * min_steps):
            loss = tr_.flow_train_step()
            if tr_.flow_step % 20 == 0:
                frac = min(1.0, (time.time() - t_start) / max_seconds)
                p.update(int(1000 * frac), 1000, f"flow step {tr_.flow_step}, loss {loss:.3f}")
    # per-type dispersions within the last ~4% of the budget (a subsample of cells, fewer steps if need be)
    with single_thread():
        tr_.fit_type_theta(max_cells=512, max_seconds=max(0.5, max_seconds * 0.97 - (time.time() - t_start)))
    lib = np.asarray(train.X.sum(1)).ravel()
    payload = tr_.model_payload(data.var_names, keys, cats, lib, codes, name="uploaded")
    payload["split"] = {"train_obs": list(data.obs_names[tr]), "test_obs": list(data.obs_names[te])}
    model = CellsModel(payload, device=dev)
    model.train_info = {"ae_steps": tr_.ae_step, "flow_steps": tr_.flow_step, "ae_seconds": t1 - t0,
                        "flow_seconds": time.time() - t1, "wall_seconds": time.time() - t_start,
                        "n_train": len(tr), "n_test": len(te), "n_genes": data.n_vars,
                        "ae_loss": float(np.mean(tr_.ae_losses[-20:])) if tr_.ae_losses else None,
                        "flow_loss": float(np.mean(tr_.flow_losses[-50:])) if tr_.flow_losses else None}
    model.test_data = data[te].copy() if len(te) else None
    model.real_data = data
    p.update(1000, 1000, "done")
    return model


# ---------------------------------------------------------------------------------------------------
# The shipped checkpoint


NAME = "cells-pbmc68k"
DEFAULT_AE_STEPS = 600
FLOW_PER_AE = 5
SPLIT_SEED = 0
VAL_FRAC, VAL_SEED = 0.2, 1  # validation split carved from the TRAINING cells (the test cells are never used)
GUIDANCE_GRID = (1.0, 1.5, 2.0, 2.5)  # CFGen: weight 1 in its configs, 1.5 in the PBMC3k notebook
STEPS_GRID = (10, 30)  # midpoint steps, checked at the selected guidance


def select_on_validation(train, keys, cats, ae_steps: int, flow_steps: int, seed: int = 0, device=None,
                         progress=None) -> dict:
    """Choose the cell-type guidance weight (and check the ODE step count) on a validation split of the
    training cells: train CFGen on the rest, score held-out-style against the per-gene NB baseline fit on the same
    cells, 3 generation seeds. Criterion (the goal is to beat the baseline on both): the lowest validation W2 among
    the weights whose validation RBF-MMD beats the baseline's; if none does, the lowest W2/W2_NB + MMD/MMD_NB."""
    from backend.cells.api import CellsModel
    from backend.cells.data import split_indices
    from backend.cells.metrics import baseline_cells, evaluate
    from backend.cells.model import DEFAULT_STEPS

    sub, val = split_indices(train.obs["cell_type"].to_numpy(), VAL_FRAC, seed=VAL_SEED)
    fit_, val_ = train[sub].copy(), train[val].copy()
    codes = np.stack([fit_.obs[k].cat.codes.to_numpy() for k in keys], 1).astype(np.int64)
    tr_ = Trainer(fit_.X, codes, [len(cats[k]) for k in keys], {}, seed=seed, device=device)
    p = as_progress(progress)
    total = ae_steps + flow_steps
    while tr_.ae_step < ae_steps:
        tr_.ae_train_step()
        if tr_.ae_step % 50 == 0:
            p.update(tr_.ae_step, total, "validation model: autoencoder")
    tr_.encode_all()
    while tr_.flow_step < flow_steps:
        tr_.flow_train_step()
        if tr_.flow_step % 200 == 0:
            p.update(ae_steps + tr_.flow_step, total, "validation model: flow")
    model = CellsModel(tr_.model_payload(train.var_names, keys, cats, np.asarray(fit_.X.sum(1)).ravel(), codes,
                                         name="validation"), device=device)
    labels = val_.obs["cell_type"].astype(str).to_numpy()
    cond = pd.DataFrame({"cell_type": labels})
    seeds = (0, 1, 2)

    def mean(es):
        return {m: float(np.mean([e[m] for e in es])) for m in ("w2", "rbf_mmd", "knn_f1")}

    nb = mean([evaluate(val_, baseline_cells(fit_, labels, "cell_type", seed=r)) for r in seeds])
    rows = []
    for w, st in [(w, DEFAULT_STEPS) for w in GUIDANCE_GRID]:
        m = mean([evaluate(val_, model.generate(len(val_), conditions=cond, guidance={"cell_type": w}, seed=r,
                                                steps=st)) for r in seeds])
        rows.append({"guidance": w, "steps": st, **m, "score": m["w2"] / nb["w2"] + m["rbf_mmd"] / nb["rbf_mmd"]})
    ok = [r for r in rows if r["rbf_mmd"] < nb["rbf_mmd"]]
    best = min(ok, key=lambda r: r["w2"]) if ok else min(rows, key=lambda r: r["score"])
    for st in STEPS_GRID:
        if st != DEFAULT_STEPS:
            m = mean([evaluate(val_, model.generate(len(val_), conditions=cond, guidance={"cell_type": best["guidance"]},
                                                    seed=r, steps=st)) for r in seeds])
            rows.append({"guidance": best["guidance"], "steps": st, **m,
                         "score": m["w2"] / nb["w2"] + m["rbf_mmd"] / nb["rbf_mmd"]})
    return {"guidance": best["guidance"], "n_fit": int(len(sub)), "n_val": int(len(val)), "val_seed": VAL_SEED,
            "nb": nb, "rows": [{k: (round(v, 4) if isinstance(v, float) else v) for k, v in r.items()} for r in rows]}


def train_pbmc68k(steps=None, device=None, seed=0, resume=False, progress=None) -> dict:
    """Train CFGen on the pbmc68k training split; evaluate on its held-out cells; write the checkpoint."""
    from backend.cells.api import CellsModel
    from backend.cells.data import load_dataset, split_indices
    from backend.cells.embedding import fit_reference
    from backend.cells.metrics import augmentation_experiment, compare_to_baseline, guidance_sweep
    from backend.cells.model import DEFAULT_STEPS

    ae_steps = int(steps or DEFAULT_AE_STEPS)
    flow_steps = FLOW_PER_AE * ae_steps
    total = ae_steps + flow_steps
    dev = get_device(device)
    p = as_progress(progress)
    t_start = time.time()
    real = load_dataset("pbmc68k")
    keys = ["cell_type", "phase"]
    tr, te = split_indices(real.obs["cell_type"].to_numpy(), 0.25, seed=SPLIT_SEED)
    train, test = real[tr].copy(), real[te].copy()
    cats = {k: list(real.obs[k].cat.categories) for k in keys}
    selection = select_on_validation(train, keys, cats, ae_steps, flow_steps, seed=seed, device=dev, progress=p)
    eval_guidance = selection["guidance"]
    codes = np.stack([train.obs[k].cat.codes.to_numpy() for k in keys], 1).astype(np.int64)
    trainer = Trainer(train.X, codes, [len(cats[k]) for k in keys], {}, seed=seed, device=dev)
    prior = 0.0
    if resume:
        st = load_train_state(NAME)
        if st is not None and st.get("ae_steps_target") == ae_steps and st.get("seed") == seed:
            trainer.load_state(st["trainer"])
            prior = float(st.get("wall_time_s", 0.0))
    save_every = 250
    while trainer.ae_step < ae_steps:
        loss = trainer.ae_train_step()
        if trainer.ae_step % 10 == 0 or trainer.ae_step == ae_steps:
            p.update(trainer.ae_step, total, f"autoencoder NB loss/gene {loss:.4f}")
        if trainer.ae_step % save_every == 0:
            save_train_state(NAME, {"trainer": trainer.state(), "ae_steps_target": ae_steps, "seed": seed,
                                    "wall_time_s": prior + time.time() - t_start})
    if trainer.z is None:
        trainer.encode_all()
    while trainer.flow_step < flow_steps:
        loss = trainer.flow_train_step()
        if trainer.flow_step % 50 == 0 or trainer.flow_step == flow_steps:
            p.update(ae_steps + trainer.flow_step, total, f"flow-matching loss {loss:.4f}")
        if trainer.flow_step % (save_every * 4) == 0:
            save_train_state(NAME, {"trainer": trainer.state(), "ae_steps_target": ae_steps, "seed": seed,
                                    "wall_time_s": prior + time.time() - t_start})
    train_wall = prior + time.time() - t_start
    lib = np.asarray(train.X.sum(1)).ravel()
    payload = trainer.model_payload(real.var_names, keys, cats, lib, codes, name=NAME)
    payload["split"] = {"train": torch.as_tensor(tr), "test": torch.as_tensor(te), "seed": SPLIT_SEED}
    model = CellsModel(payload, device=dev)

    p.update(total, total, "evaluating on held-out cells")
    t_eval = time.time()
    comp = compare_to_baseline(model, train, test, by="cell_type", replicates=(0, 1, 2),
                               guidance={"cell_type": eval_guidance})
    comp1 = compare_to_baseline(model, train, test, by="cell_type", replicates=(0, 1, 2), guidance=1.0)["cfgen"]
    aug = augmentation_experiment(model, train, test, seeds=(0, 1, 2), guidance={"cell_type": eval_guidance})
    sweep = guidance_sweep(model, test, by="cell_type", weights=(0.5, 1.0, 1.5, 2.0), replicates=(0, 1))
    payload["reference"] = fit_reference(real, seed=0)
    eval_wall = time.time() - t_eval

    m, b = comp["cfgen"], comp["baseline"]
    metrics = {"rbf_mmd": m["rbf_mmd"], "w2": m["w2"], "knn_f1": m["knn_f1"],
               "rbf_mmd_sem": m["rbf_mmd_sem"], "w2_sem": m["w2_sem"], "knn_f1_sem": m["knn_f1_sem"],
               "w2_types_ge20": m["w2_large"], "rbf_mmd_types_ge20": m["rbf_mmd_large"],
               "w2_guidance1": comp1["w2"], "rbf_mmd_guidance1": comp1["rbf_mmd"], "knn_f1_guidance1": comp1["knn_f1"],
               "ae_nb_loss_per_gene": float(np.mean(trainer.ae_losses[-50:])),
               "flow_loss": float(np.mean(trainer.flow_losses[-200:])),
               "rare_f1_real_only": aug["summary"]["rare_f1_real_only"],
               "rare_f1_augmented": aug["summary"]["rare_f1_augmented"],
               "macro_f1_real_only": aug["summary"]["macro_f1_real_only"],
               "macro_f1_augmented": aug["summary"]["macro_f1_augmented"]}
    rt = comp["real_train"]
    baselines = {"nb_rbf_mmd": b["rbf_mmd"], "nb_w2": b["w2"], "nb_knn_f1": b["knn_f1"],
                 "nb_w2_types_ge20": b["w2_large"], "nb_rbf_mmd_types_ge20": b["rbf_mmd_large"],
                 "real_train_rbf_mmd": rt["rbf_mmd"], "real_train_w2": rt["w2"], "real_train_knn_f1": rt["knn_f1"],
                 "real_train_w2_types_ge20": rt["w2_large"]}
    card = {
        "command": f"python -m backend.train {NAME} --steps {ae_steps} --seed {seed}",
        "config": {**DEFAULT_CONFIG, "ae_steps": ae_steps, "flow_steps": flow_steps, "condition_keys": keys,
                   "sampler": (f"midpoint, {DEFAULT_STEPS} steps; cell-type guidance {eval_guidance}, chosen on a "
                               "validation split of the training cells (see validation)"),
                   "size_factors": "copied from "
                   "random training cells of the same condition"},
        "data": (f"scanpy pbmc68k_reduced: {real.n_obs} cells x {real.n_vars} genes, counts recovered from .raw.X; "
                 f"stratified split by cell type (seed {SPLIT_SEED}): {len(tr)} training / {len(te)} held-out cells"),
        "why": ("CFGen's default autoencoder ([512, 256] -> 50 latents) memorises 525 training cells: its NB means "
                "sit on the training counts, so sampling adds noise twice (measured 0.74-0.76 "
                "zero fraction vs 0.68 real) and W2 on held-out cells was 22.4 vs 21.1 for the NB baseline. A "
                "narrower bottleneck ([256, 128] -> 10) for 600 steps (~300 epochs, CFGen's epoch count) with a 30x "
                "learning rate on the per-gene log-theta (so theta reaches its optimum in that time) matches the "
                "real zero fraction. After stage 1, one inverse dispersion per cell type and gene is fit by maximum "
                "likelihood with the decoder fixed (CFGen's covariate_specific_theta; a shared theta per gene has to "
                "absorb type-specific over-dispersion of marker genes), kept between the smallest shared theta and 1e4 "
                "(unbounded, genes never seen in a small type go to theta -> 0 and would sample rare huge counts); "
                "generation uses the conditioned type's theta (the shared one when the cell type is not conditioned). The flow net is a small residual MLP "
                "(hidden 64, emb 32, 3 blocks, like CFGen's resnet_small) on standardised latents, lr 1e-3 (10x "
                "CFGen's) so it converges in a few thousand steps on one CPU thread. Unlike CFGen, the rows of a "
                "flow batch that condition on an attribute are drawn class-balanced (a uniform category, then one "
                "of its cells): v(x|c) still regresses on p(z|c), but rare types (6-14 training cells) get as many "
                "updates as common ones; unconditional rows keep the data distribution (validation W2 0.05-0.16 "
                "lower at every guidance weight). The cell-type guidance weight "
                "is chosen on a validation split of the training cells (20%, stratified; a model trained on the "
                "other 80%; criterion: the lowest validation W2 among the weights whose validation RBF-MMD beats the NB "
                "baseline's), never on the held-out cells; the shipped model is then "
                "trained on all training cells. The sampler uses " + str(DEFAULT_STEPS) + " midpoint steps "
                "(the validation rows compare 30). Metrics follow CFGen's evaluation: 30 "
                "PCs fit on held-out real cells, per-type W2 / RBF-MMD / 5-NN F1 (leave-one-out), averaged over "
                "types with >= 2 held-out cells and over 3 generation seeds, one generated cell per held-out cell. "
                "The all-type mean W2 is dominated by types with 2-5 held-out cells, where W2 rewards tight, "
                "under-dispersed samples (real training cells score worse than the NB baseline there); "
                "*_types_ge20 averages the types with >= 20 held-out cells, as CFGen's per-type script did."),
        "validation": selection,
        "seed": seed, "steps": ae_steps, "wall_time_s": round(train_wall, 1), "eval_time_s": round(eval_wall, 1),
        "device": str(dev), "metrics": metrics, "baselines": baselines,
        "headline": {"metric": "rbf_mmd", "label": "Held-out per-type RBF-MMD (CFGen)", "value": m["rbf_mmd"],
                     "baseline": b["rbf_mmd"], "baseline_label": "per-gene NB"},
        "types_ge20": [r["type"] for r in comp["per_type"] if r["n_real"] >= 20],
        "n_eval": int(len(te)), "n_train": int(len(tr)),
        "per_type": comp["per_type"], "augmentation": aug, "guidance_sweep": sweep,
        "reference_numbers": {"note": "CFGen authors' intermediate repo results (theislab/CFGen@db92d15), full "
                                      "PBMC68k, not this subset: RBF-MMD 0.412, W2 15.77 (scVI 0.446 / 16.11)"},
        "losses": {"ae": trainer.ae_losses[:: max(1, ae_steps // 100)],
                   "flow": trainer.flow_losses[:: max(1, flow_steps // 100)]},
    }
    save_checkpoint(NAME, payload, card)
    return card


TRAINERS = {NAME: train_pbmc68k}
