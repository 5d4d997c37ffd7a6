"""Counterfactuals of a user's graph: the same samples (same exogenous noise) before and after do(Z_i = v),
rendered as images, and the graph as DOT source (coloured against the truth when one is given)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from backend.causal import data as D
from backend.causal import metrics as M

SAMPLE_SEED = 5  # the samples the page shows


@dataclass
class Counterfactual:
    names: list                    # variable names Z1..Zd
    variable: int                  # the intervened variable
    value_sd: float                # do(Z_variable = value_sd * its observational std)
    weights: np.ndarray            # (d,d) edge weights (nonlinear: least-squares slope of the mechanism)
    before: np.ndarray             # (n,d) latents of the samples
    after: np.ndarray              # (n,d) the same samples under the intervention
    images_before: np.ndarray      # (n,32,32,3) uint8
    images_after: np.ndarray
    strip_before: np.ndarray       # the images side by side, upscaled 3x, uint8 (96, W, 3)
    strip_after: np.ndarray
    moved: list                    # names of the variables that change: the target and its descendants

    @property
    def changed(self) -> np.ndarray:
        """Bool (n,d): which latent of each sample the intervention changed."""
        return np.abs(self.after - self.before) > 1e-9


def counterfactual(adjacency, kind: str = "linear", variable: int = 0, value_sd: float = 1.5, n: int = 5,
                   seed: int = SAMPLE_SEED, scm_seed: int = 0) -> Counterfactual:
    """`n` observational samples of the graph's SCM and the same samples under do(Z_variable = value_sd sd):
    the noise is recovered from each sample and re-used, so only the target and its descendants move."""
    scm = D.make_scm(adjacency, kind, seed=scm_seed)
    d = scm.d
    variable = int(variable)
    if not 0 <= variable < d:
        raise ValueError(f"Cannot intervene on variable {variable}: the graph has {d} variables.")
    z = scm.sample(n, seed=seed)
    eps = z - np.stack([scm.mechanism(j, z) for j in range(d)], 1)
    zi = scm.solve(eps, {variable: np.full(len(z), float(value_sd) * scm.scale[variable])})
    images_before, images_after = D.render(z, scm.scale), D.render(zi, scm.scale)
    names = D.node_names(d)
    desc = D.descendants(scm.adjacency)[variable]
    return Counterfactual(names, variable, float(value_sd), scm.weights, z, zi, images_before, images_after,
                          image_strip(images_before), image_strip(images_after),
                          [names[j] for j in range(d) if desc[j]])


def image_strip(images: np.ndarray, factor: int = 3, gap: int = 4) -> np.ndarray:
    """Images (n,h,w,3) side by side, upscaled, separated by white gaps."""
    from backend.core.media import upscale

    white = np.full((images.shape[1] * factor, gap, 3), 255, np.uint8)
    parts = []
    for im in images:
        parts += [upscale(im, factor), white]
    return np.concatenate(parts[:-1], 1)


EDGE_STYLE = {"correct": "color=forestgreen, penwidth=2", "reversed": "color=darkorange, penwidth=2, dir=back",
              "missing": "color=gray, style=dashed", "undirected": "color=steelblue, penwidth=2, dir=none",
              "extra": "color=red, penwidth=2, constraint=false"}


def to_dot(adjacency, weights=None, truth=None) -> str:
    """DOT source of a graph; with `truth`, edges coloured correct / reversed / extra / missing / undirected
    and laid out along the true edges (reversed ones drawn with dir=back), so both graphs get one placement."""
    a = np.asarray(adjacency)
    names = D.node_names(a.shape[0])
    lines = ["digraph G {", "rankdir=LR; bgcolor=transparent; node [shape=circle, style=filled, fillcolor=white];"]
    lines += [f'"{n}";' for n in names]
    if truth is None:
        for i, j in zip(*np.nonzero(a)):
            lab = f' [label="{weights[i, j]:+.2f}"]' if weights is not None else ""
            lines.append(f'"{names[i]}" -> "{names[j]}"{lab};')
    else:
        truth = np.asarray(truth)
        status = {(e["from"], e["to"]): e for e in M.compare_edges(truth, a)}
        for i, j in zip(*np.nonzero(truth)):  # true edges first, in the true graph's order
            e = status[(int(i), int(j))]
            lines.append(f'"{names[i]}" -> "{names[j]}" [{EDGE_STYLE[e["status"]]}, tooltip="{e["status"]}"];')
        for e in status.values():
            if e["status"] == "extra":
                und = ", dir=none" if e["estimated_undirected"] else ""
                lines.append(f'"{names[e["from"]]}" -> "{names[e["to"]]}" [{EDGE_STYLE["extra"]}{und}, '
                             'tooltip="extra"];')
    lines.append("}")
    return "\n".join(lines)
