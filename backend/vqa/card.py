"""The `vqa` card: test accuracy by representation and question type, targets, compute table, upstream metrics."""

from __future__ import annotations

from backend.vqa.features import LABELS

N_UPSTREAM = 100  # test scenes on which the object-centric representations' FG-ARI is measured


def upstream_fg_ari(recipe, reps) -> dict:
    """FG-ARI of each object-centric representation's masks on the first N_UPSTREAM test scenes (gt: 1)."""
    from backend.slots.metrics import fg_ari
    from backend.vqa.features import extract

    te = recipe.splits()["test"]
    n = min(N_UPSTREAM, len(te.images))
    out = {}
    for r in reps:
        if r in ("slots", "slots_mask", "untrained", "kmeans"):
            _, masks = extract(r, te.images[:n], te.objects[:n], with_masks=True)
            out[r] = round(fg_ari(te.labels[:n], masks), 4)
        elif r == "gt":
            out[r] = 1.0
    return out


def compute_table(recipe) -> dict:
    """Per representation: feature extraction (ms per scene) and its share of the downstream training time (s)."""
    total_fwd = sum(recipe.train_ms.values()) or 1.0
    wall = getattr(recipe, "train_wall_s", None)
    out = {}
    for r in recipe.config["reps"]:
        out[r] = {"features_ms_per_scene": round(float(recipe.timings.get(r, 0.0)), 2),
                  "train_forward_s": round(recipe.train_ms.get(r, 0.0) / 1000, 1)}
        if wall:
            out[r]["train_share_s"] = round(wall * recipe.train_ms.get(r, 0.0) / total_fwd, 1)
    return out


def card_fields(recipe, metrics: dict, table: list, model) -> dict:
    reps = list(metrics)
    get = lambda r, k="all": metrics.get(r, {}).get(k)  # noqa: E731
    targets = []
    if "slots" in metrics and "question" in metrics:
        targets.append({"metric": "slots minus question-only accuracy (points)", "threshold": 30.0,
                        "value": round(100 * (get("slots") - get("question")), 1)})
    if "slots" in metrics and "grid4" in metrics:
        targets.append({"metric": "slots minus CNN grid 4x4 accuracy (points)", "threshold": 5.0,
                        "value": round(100 * (get("slots") - get("grid4")), 1)})
    if "gt" in metrics:
        targets.append({"metric": "ground-truth tokens accuracy", "threshold": 0.97, "value": get("gt")})
    best_rel = max((get(r, "relational") for r in ("slots", "slots_mask") if r in metrics), default=None)
    if best_rel is not None:
        targets.append({"metric": "relational accuracy, slots (+ mask features)", "threshold": 0.75,
                        "value": best_rel})
    up = upstream_fg_ari(recipe, reps)
    c = recipe.config
    head = "slots_mask" if "slots_mask" in metrics else reps[-1]
    return {
        "metrics": {**metrics, "compute": {r: v["features_ms_per_scene"] for r, v in compute_table(recipe).items()},
                    "upstream_fg_ari": up},
        "baselines": {"question_only": metrics.get("question", {})},
        "targets": [{"direction": ">=", **t} for t in targets],
        "headline": {"metric": f"{head}.all", "label": f"test accuracy, {LABELS[head]}", "value": get(head),
                     "baseline": get("question"), "baseline_label": "question only"},
        "readout": (f"argmax answer of each representation's transformer ({c['layers']} blocks, d={c['d']}) after "
                    f"the last step; {len(recipe.splits()['test'].qs)} test questions on {c['n_test']} test scenes"),
        "limitations": [
            "One seed per representation; intervals are 95 % Wilson intervals over test questions only.",
            "Representations not in config.reps were not trained in this run.",
            "Slot features use the shipped slots-sprites model with 5 slots, no merging, slot noise seed 0.",
        ],
        "evaluation": {"table": table, "compute": compute_table(recipe), "upstream_fg_ari": up,
                       "labels": {r: LABELS[r] for r in reps}, "n_questions": {
                           s: len(recipe.splits()[s].qs) for s in ("train", "val", "test")},
                       "timings": dict(recipe.timings)},
    }
