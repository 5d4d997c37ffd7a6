"""What a Slots checkpoint measured: the slim card's fields from an evaluation, and `model_report` for the page.

The card holds the headline numbers; the detail (the readout grid on validation scenes, every test score, the
coverage references, the property probe, the training snapshots) lives in NAME.pt under "evaluation" and
"training", and `model_report(variant)` returns it as a `SlotsReport`.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from backend.core import cached, load_checkpoint

CHECKPOINTS = {"sprites": "slots-sprites", "textured": "slots-textured"}
CARD_METRICS = ("fg_ari", "ari", "miou", "mse", "fg_ari_median", "fg_ari_no_merge", "miou_no_merge",
                "fg_ari_posterior", "miou_posterior")


def _r(d: dict, digits: int = 5) -> dict:
    return {k: _r(v, digits) if isinstance(v, dict) else (None if v is None else round(float(v), digits))
            for k, v in d.items()}


def card_fields(result: dict, variant: str, config: dict, train_iters: int, targets: list[dict]) -> dict:
    """The card's metrics, baselines, targets, headline, readout and limitations, and the "evaluation" entry."""
    m, b, passes = result["metrics"], result["baselines"], config["passes"]
    it, tau = result["readout"]["iters"], result["readout"]["merge"]
    iv = result["intervals"]
    sh = iv["shifted"]
    n, res = config["n_test"], result["resolution"]
    merging = f"duplicate slots merged above mask cosine similarity {tau}" if tau else "no duplicate-slot merging"
    limitations = [
        f"Generated {variant} scenes at {res}x{res} only; trained far shorter than the paper (500k steps).",
        "Alpha masks are blurred at object edges, where some object pixels go to another slot; the posterior "
        f"readout (FG-ARI {m['fg_ari_posterior']:.3f}) gets more of them right.",
        f"Spare slots duplicate the background: without merging, mIoU is {m['miou_no_merge']:.3f}.",
    ]
    if passes > 1:
        limitations.append(f"Test-time averaging over {passes} passes scores FG-ARI {m[f'fg_ari_passes{passes}']:.3f} "
                           f"but costs {passes}x; the default is one pass.")
    if variant == "textured":
        limitations.append("Procedural textures stand in for the neural-style textures of the paper's benchmarks.")
    trained = ("the fine-tune saw the narrower 'varied' ranges" if config.get("train_dist") == "mix"
               else "never trained on")
    limitations.append(
        f"On shifted scenes (wider sizes, colours, backgrounds, rotations, outlines, aliasing; {trained}) "
        f"FG-ARI is {sh['shipped']['fg_ari']:.3f} against k-means {sh['kmeans']['fg_ari']:.3f}.")
    val = " + ".join(f"{config['n_val']} {d}" for d in config.get("val_dists", ["standard"]))
    ci = {k: v for k, v in iv["test"]["shipped"].items() if k.endswith(("_lo", "_hi"))}
    return {
        "metrics": _r({k: m[k] for k in CARD_METRICS + (f"fg_ari_passes{passes}", f"miou_passes{passes}") if k in m}
                      | {"ci95": ci, "paper_readout": iv["test"]["paper"], "shifted": sh["shipped"],
                         "shifted_paper_readout": sh["paper"]}, 4),
        "baselines": _r(b | {"kmeans_shifted": sh["kmeans"]}, 4),
        "targets": [_r({k: v for k, v in t.items() if k in ("threshold", "value")}) | {
            "metric": t["metric"], "direction": t["direction"]} for t in targets],
        "headline": {"metric": "fg_ari", "label": f"FG-ARI, {n} held-out {variant} scenes",
                     "value": round(m["fg_ari"], 4), "baseline": round(b["kmeans"]["fg_ari"], 4),
                     "baseline_label": "k-means (colour + position)"},
        "readout": (f"Alpha masks' argmax after {it} attention iterations (trained with {train_iters}), {merging}, "
                    f"one pass; the iterations and the threshold chosen on {val} validation scenes (seed 20000). "
                    f"Paper readout ('paper_readout'): {train_iters} iterations, no merging. Test seed "
                    f"{result['test_seed']}; intervals: 95 % bootstrap over scenes."),
        "limitations": limitations,
        "evaluation": {"readout": {"iters": it, "merge": tau}, "n_test": n, "n_val": config["n_val"],
                       "test_seed": result["test_seed"], "intervals": _r(iv),
                       "passes": passes, "grid": result["grid"], "metrics": _r(m), "baselines": _r(b),
                       "probe": _r(result.get("probe", {}), 4)},
    }


@dataclass
class SlotsReport:
    """A shipped checkpoint's held-out evaluation (from its card and payload)."""

    name: str
    variant: str
    steps: int
    selected_step: int
    device: str
    wall_time_s: float
    n_test: int
    iters: int  # attention iterations of the readout
    merge: float | None  # duplicate-slot merging threshold of the readout (None: off)
    passes: int  # test-time passes of the averaged row
    metrics: dict
    baselines: dict
    targets: list  # {metric, threshold, value, direction, met}
    missed: list  # the targets not met
    table: list  # rows: method, FG-ARI, ARI (with bg), mIoU, MSE
    probe: dict  # {"trained": {factor: score, mean}, "untrained": {...}}
    lead: dict = field(default_factory=dict)  # metric -> the model's lead over k-means (FG-ARI, mIoU)
    snapshots: list = field(default_factory=list)  # training snapshots: step, val_* and probe_* scores
    readout: str = ""
    test_seed: int | None = None  # seed of the test scenes the card reports on
    # rows: readout, then FG-ARI and mIoU with 95 % intervals on the test and the shifted test scenes
    comparison: list = field(default_factory=list)
    data: str = ""  # the card's description of the training, validation and test data
    base_steps: int = 0  # a fine-tuned checkpoint: the steps of the weights it started from (else 0)


def _comparison(intervals: dict, iters: int, merge, train_iters: int) -> list[dict]:
    """The shipped readout, the paper's and k-means side by side, each score as "mean [low, high]"."""
    if not intervals:
        return []
    shipped = f"Slot Attention, shipped readout ({iters} iterations, " + (
        f"duplicates merged at {merge})" if merge else "no merging)")
    names = {"shipped": shipped, "paper": f"Slot Attention, paper readout ({train_iters} iterations, no merging)",
             "kmeans": "k-means (colour + position)"}
    fmt = lambda d, k: f"{d[k]:.3f} [{d[k + '_lo']:.3f}, {d[k + '_hi']:.3f}]"  # noqa: E731
    return [{"readout": label, "FG-ARI": fmt(intervals["test"][key], "fg_ari"),
             "mIoU": fmt(intervals["test"][key], "miou"), "FG-ARI, shifted": fmt(intervals["shifted"][key], "fg_ari"),
             "mIoU, shifted": fmt(intervals["shifted"][key], "miou")} for key, label in names.items()]


def _table(m: dict, b: dict, merge, passes: int) -> list[dict]:
    row = lambda method, fg, miou, ari=None, mse=None: {  # noqa: E731
        "method": method, "FG-ARI": fg, "ARI (with bg)": ari, "mIoU": miou, "MSE": mse}
    rows = [row("Slot Attention" + (" (duplicate slots merged)" if merge else ""), m["fg_ari"], m["miou"], m["ari"],
                m["mse"])]
    if merge:
        rows.append(row("Slot Attention, no merging", m["fg_ari_no_merge"], m["miou_no_merge"], mse=m["mse"]))
    rows.append(row("Slot Attention, posterior readout", m["fg_ari_posterior"], m["miou_posterior"], mse=m["mse"]))
    if f"fg_ari_passes{passes}" in m:
        rows.append(row(f"Slot Attention, averaged over {passes} test-time passes", m[f"fg_ari_passes{passes}"],
                        m[f"miou_passes{passes}"], mse=m.get(f"mse_passes{passes}")))
    km = b["kmeans"]
    rows.append(row("k-means (colour + position)", km["fg_ari"], km["miou"], km.get("ari")))
    rows.append(row("Reference: true pixel coverage, majority", b["coverage_majority"]["fg_ari"],
                    b["coverage_majority"]["miou"]))
    rows.append(row("Reference: true pixel coverage, objects first", b["coverage_objects_first"]["fg_ari"],
                    b["coverage_objects_first"]["miou"]))
    return rows


def checkpoint_name(variant: str) -> str:
    if variant not in CHECKPOINTS:
        raise ValueError(f"Unknown variant {variant!r}; choose one of {', '.join(CHECKPOINTS)}.")
    return CHECKPOINTS[variant]


@cached
def model_report(variant: str = "sprites") -> SlotsReport:
    """The shipped `variant` checkpoint's held-out evaluation: card metrics and baselines, targets (and which are
    missed), the readout it uses, the table of readouts and references, the probe and the training snapshots."""
    name = checkpoint_name(variant)
    payload, card = load_checkpoint(name)
    ev, training = payload.get("evaluation") or {}, payload.get("training") or {}
    m, b = ev.get("metrics", card["metrics"]), ev.get("baselines", card["baselines"])
    readout = ev.get("readout", {})
    passes = int(ev.get("passes", 8))
    targets = card.get("targets") or []
    base = payload.get("base_training") or {}
    offset = int(base.get("steps", 0))  # a fine-tune's snapshots continue the base run's step count
    snapshots = list(base.get("snapshots", [])) + [{**s, "step": s["step"] + offset}
                                                   for s in training.get("snapshots", [])]
    return SlotsReport(
        name=name, variant=variant, steps=int(card["steps"]), selected_step=offset + int(training.get(
            "selected_step", card["steps"])), data=str(card.get("data", "")), base_steps=offset,
        device=str(card.get("device", "")), wall_time_s=float(card.get("wall_time_s", 0.0)),
        n_test=int(ev.get("n_test", 0)), iters=int(readout.get("iters") or payload["config"]["iters"]),
        merge=readout.get("merge"), passes=passes, metrics=m, baselines=b, targets=targets,
        missed=[t for t in targets if not t["met"]], table=_table(m, b, readout.get("merge"), passes),
        probe=ev.get("probe", {}), lead={k: m[k] - b["kmeans"][k] for k in ("fg_ari", "miou")},
        snapshots=snapshots, readout=card.get("readout", ""),
        test_seed=ev.get("test_seed"),
        comparison=_comparison(ev.get("intervals") or {}, int(readout.get("iters") or payload["config"]["iters"]),
                               readout.get("merge"), int(payload["config"]["iters"])))
