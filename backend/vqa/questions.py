"""Template questions about generated sprites scenes, answered from `backend.slots.make_scenes` ground truth.

Templates (`TEMPLATES`): count (all / by shape / by colour), exist (colour + shape), query shape, query colour,
left-of, above, bigger-than and compare counts. A colour is named only when it is unambiguous in the scene: every
object's hue lies at least `COLOR_MARGIN` away from the edges of the named colour's hue bin (six bins centred on
red, yellow, green, cyan, blue, magenta). Objects are referred to by a shape that is unique in the scene, or else by
an unambiguous colour that is unique in the scene. Relations need a clear difference (`REL_MARGIN` of the side
between centres, `SIZE_MARGIN` between sizes). Answers are balanced within each template: every answer a template
gives is drawn equally often, and answers too rare to fill half a quota are not asked.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from backend.slots.data import SHAPES

COLORS = ("red", "yellow", "green", "cyan", "blue", "magenta")
COLOR_MARGIN = 0.02  # hue distance from a colour bin's edge (bins are 1/6 wide, centred on each colour)
REL_MARGIN = 0.06  # left-of / above: centres at least this far apart (fraction of the side)
SIZE_MARGIN = 0.04  # bigger-than: sizes at least this far apart
TEMPLATES = ("count_all", "count_shape", "count_color", "exist", "query_shape", "query_color", "left_of", "above",
             "bigger", "compare_counts")
TYPES = {"count_all": "count", "count_shape": "count", "count_color": "count", "exist": "exist",
         "query_shape": "query", "query_color": "query", "left_of": "relational", "above": "relational",
         "bigger": "relational", "compare_counts": "compare"}
ANSWERS = ("no", "yes", "0", "1", "2", "3", "4", *SHAPES, *COLORS)
WORDS = ("<pad>", "how", "many", "objects", "are", "there", "is", "a", "what", "shape", "colour", "the", "object",
         "left", "of", "above", "bigger", "than", "more", *COLORS, *SHAPES, *(s + "s" for s in SHAPES))
MAX_WORDS = 12


@dataclass(frozen=True)
class Question:
    scene: int  # index into the scenes the question was asked about
    template: str
    text: str
    answer: str
    args: tuple = ()  # the template's arguments (shapes, colours)

    @property
    def type(self) -> str:
        return TYPES[self.template]

    @property
    def answer_index(self) -> int:
        return ANSWERS.index(self.answer)


def encode(text: str) -> np.ndarray:
    """Word indices (MAX_WORDS,) of a question, padded with 0; ValueError on an unknown word."""
    words = text.lower().replace("?", " ").replace(",", " ").split()
    unknown = [w for w in words if w not in WORDS]
    if unknown:
        raise ValueError(f"Unknown word {unknown[0]!r}; questions use only: {', '.join(WORDS[1:])}.")
    if len(words) > MAX_WORDS:
        raise ValueError(f"Questions have at most {MAX_WORDS} words; got {len(words)}.")
    out = np.zeros(MAX_WORDS, np.int64)
    out[:len(words)] = [WORDS.index(w) for w in words]
    return out


# -- scene facts ---------------------------------------------------------------------------------------
def color_of(hue: float) -> int:
    """The colour bin (index into COLORS) whose centre is nearest the hue."""
    return int(np.round(hue * 6)) % 6


def clear_color(hue: float) -> bool:
    """Whether the hue lies clearly inside its colour bin (not within COLOR_MARGIN of an edge)."""
    d = abs(hue * 6 - np.round(hue * 6)) / 6  # distance from the bin centre
    return d <= 1 / 12 - COLOR_MARGIN


def nameable_colors(objects: list) -> set:
    """Colours that can be named in this scene: no object's hue lies near that colour's bin edges."""
    ok = set(range(6))
    for o in objects:
        if not clear_color(o["hue"]):
            h6 = o["hue"] * 6
            ok -= {int(np.floor(h6)) % 6, int(np.ceil(h6)) % 6}
    return ok


def referents(objects: list) -> dict:
    """object index -> how it can be named ("the square" / "the red object"), for objects that can be."""
    shapes = [o["shape"] for o in objects]
    names = nameable_colors(objects)
    cols = [color_of(o["hue"]) for o in objects]
    out = {}
    for i, o in enumerate(objects):
        if shapes.count(o["shape"]) == 1:
            out[i] = f"the {o['shape']}"
        elif cols[i] in names and cols.count(cols[i]) == 1:
            out[i] = f"the {COLORS[cols[i]]} object"
    return out


def _yn(b: bool) -> str:
    return "yes" if b else "no"


def _relations(objects: list, refs: dict) -> list:
    out = []
    for i in refs:
        for j in refs:
            if i == j:
                continue
            a, b = objects[i], objects[j]
            ri, rj = refs[i], refs[j]
            if abs(a["x"] - b["x"]) >= REL_MARGIN:
                out.append(("left_of", f"is {ri} left of {rj}", _yn(a["x"] < b["x"]), (ri, rj)))
            if abs(a["y"] - b["y"]) >= REL_MARGIN:
                out.append(("above", f"is {ri} above {rj}", _yn(a["y"] < b["y"]), (ri, rj)))
            if abs(a["size"] - b["size"]) >= SIZE_MARGIN:
                out.append(("bigger", f"is {ri} bigger than {rj}", _yn(a["size"] > b["size"]), (ri, rj)))
    return out


def candidates(objects: list) -> list:
    """Every question the templates can ask about one scene: (template, text, answer, args)."""
    shapes = [o["shape"] for o in objects]
    cols = [color_of(o["hue"]) for o in objects]
    names = sorted(nameable_colors(objects))
    out = [("count_all", "how many objects are there", str(len(objects)), ())]
    for s in SHAPES:
        out.append(("count_shape", f"how many {s}s are there", str(shapes.count(s)), (s,)))
        for c in names:
            has = any(sh == s and cc == c for sh, cc in zip(shapes, cols, strict=True))
            out.append(("exist", f"is there a {COLORS[c]} {s}", _yn(has), (COLORS[c], s)))
    for c in names:
        out.append(("count_color", f"how many {COLORS[c]} objects are there", str(cols.count(c)), (COLORS[c],)))
        if cols.count(c) == 1:
            out.append(("query_shape", f"what shape is the {COLORS[c]} object", shapes[cols.index(c)], (COLORS[c],)))
    for s in SHAPES:
        i = shapes.index(s) if shapes.count(s) == 1 else -1
        if i >= 0 and cols[i] in names:
            out.append(("query_color", f"what colour is the {s}", COLORS[cols[i]], (s,)))
    for a in SHAPES:
        for b in SHAPES:
            na, nb = shapes.count(a), shapes.count(b)
            if a != b and na != nb:
                out.append(("compare_counts", f"are there more {a}s than {b}s", _yn(na > nb), (a, b)))
    out += _relations(objects, referents(objects))
    return out


def _objects_of(scenes) -> list:
    """Accept make_scenes' (images, labels, objects) or the objects list itself."""
    if isinstance(scenes, tuple) and len(scenes) == 3:
        return scenes[2]
    return list(scenes)


def questions(scenes, seed: int = 0, per_scene: int = 4) -> list[Question]:
    """About `per_scene` questions per scene on average, answers balanced within each template (see module doc).

    `scenes`: `make_scenes(...)`'s (images, labels, objects) or its objects list. Seeded: same scenes and seed,
    same questions. Each template gets an equal share; within it every kept answer is drawn equally often.
    """
    objects = _objects_of(scenes)
    if not objects:
        raise ValueError("No scenes given; pass make_scenes(n, seed) with n >= 1.")
    rng = np.random.default_rng([int(seed), 2323])
    pools = {t: {} for t in TEMPLATES}
    for si, objs in enumerate(objects):
        for t, text, ans, args in candidates(objs):
            pools[t].setdefault(ans, []).append(Question(si, t, text, ans, tuple(args)))
    share = max(1, int(round(len(objects) * per_scene / len(TEMPLATES))))
    out = []
    for t in TEMPLATES:
        groups = pools[t]
        if not groups:
            continue
        quota = max(1, share // len(groups))
        kept = {a: g for a, g in groups.items() if len(g) >= max(1, quota // 2)}
        if not kept:  # tiny inputs: keep the largest answer group so that the template is asked at all
            a = max(groups, key=lambda k: len(groups[k]))
            kept = {a: groups[a]}
        take = min(quota, *(len(g) for g in kept.values()))
        for a in sorted(kept):
            g = kept[a]
            out += [g[i] for i in sorted(rng.choice(len(g), take, replace=False))]
    order = rng.permutation(len(out))
    return [out[i] for i in order]


def answer_counts(qs: list[Question]) -> dict:
    """template -> {answer: count}: the balance check."""
    out = {}
    for q in qs:
        d = out.setdefault(q.template, {})
        d[q.answer] = d.get(q.answer, 0) + 1
    return out
