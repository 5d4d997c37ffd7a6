"""Rare-type augmentation: does adding generated cells of the rarest types to a classifier's training set help
it recognise real held-out cells of those types? (CFGen's data-augmentation use case.)"""

from __future__ import annotations

import numpy as np
import pandas as pd

from backend.cells.metrics import PCASpace, align_genes
from backend.cells.threads import one_thread


def rare_types(labels, n: int = 3) -> list[str]:
    vc = pd.Series(np.asarray(labels).astype(str)).value_counts()
    return list(vc.index[::-1][:n])


@one_thread
def augmentation_experiment(model, train, test, by: str = "cell_type", rare=None, target: int = 60,
                            seeds=(0, 1, 2), n_pcs: int = 30, guidance=None) -> dict:
    """Logistic regression on PCs (fit on real training cells) trained on real training cells with and without
    generated cells for the rare types (topped up to `target` cells each), scored by per-class F1 on real
    held-out cells; averaged over generation seeds."""
    import anndata as ad
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import balanced_accuracy_score, f1_score

    rare = list(rare) if rare is not None else rare_types(train.obs[by], 3)
    ytr = train.obs[by].astype(str).to_numpy()
    yte = test.obs[by].astype(str).to_numpy()
    classes = sorted(set(ytr))
    space = PCASpace(train.X, n_pcs)
    xtr, xte = space.real, space.project(test.X)

    def score(x, y):
        clf = LogisticRegression(max_iter=2000, C=1.0).fit(x, y)
        pred = clf.predict(xte)
        f1 = f1_score(yte, pred, labels=classes, average=None, zero_division=0)
        return dict(zip(classes, f1)), float(f1_score(yte, pred, labels=classes, average="macro", zero_division=0)), \
            float(balanced_accuracy_score(yte, pred))

    base_f1, base_macro, base_bal = score(xtr, ytr)
    runs = []
    for s in seeds:
        need = {t: max(0, target - int((ytr == t).sum())) for t in rare}
        labels = np.concatenate([[t] * k for t, k in need.items() if k > 0]) if any(need.values()) else []
        if len(labels) == 0:
            runs.append(score(xtr, ytr))
            continue
        gen = model.generate(len(labels), conditions=pd.DataFrame({by: labels}), seed=1000 + s, guidance=guidance)
        gen = ad.AnnData(X=align_genes(train, gen), obs=gen.obs)
        xg = space.project(gen.X)
        runs.append(score(np.concatenate([xtr, xg]), np.concatenate([ytr, labels])))
    rows = []
    for c in classes:
        aug = [r[0][c] for r in runs]
        rows.append({"type": c, "rare": c in rare, "n_train": int((ytr == c).sum()), "n_test": int((yte == c).sum()),
                     "f1_real_only": round(base_f1[c], 4), "f1_augmented": round(float(np.mean(aug)), 4),
                     "f1_augmented_sd": round(float(np.std(aug)), 4),
                     "delta": round(float(np.mean(aug)) - base_f1[c], 4)})
    rare_rows = [r for r in rows if r["rare"]]
    summary = {
        "rare_f1_real_only": float(np.mean([r["f1_real_only"] for r in rare_rows])),
        "rare_f1_augmented": float(np.mean([r["f1_augmented"] for r in rare_rows])),
        "macro_f1_real_only": base_macro, "macro_f1_augmented": float(np.mean([r[1] for r in runs])),
        "balanced_acc_real_only": base_bal, "balanced_acc_augmented": float(np.mean([r[2] for r in runs])),
    }
    return {"rare": rare, "target_per_rare_type": target, "seeds": list(seeds), "per_type": rows, "summary": summary,
            "note": f"Rare types: {', '.join(rare)}, topped up to {target} training cells each with generated cells; "
                    f"{len(seeds)} generation seeds; one fixed split: {len(yte)} held-out real cells; rare types have "
                    f"only {', '.join(str(int((yte == t).sum())) for t in rare)} held-out cells, so per-type F1 moves "
                    "in large steps."}


