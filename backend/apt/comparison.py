"""What the APT page asks for, one call per request: a digit to attack, APT beside PGD on that digit, and
the fooling-rate tables (the card's, or a run on a few test digits)."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

import numpy as np

from backend.apt.attacks import DEFAULT_EPS, AttackResult, attack, fools, pgd
from backend.apt.data import prepare_image, test_set
from backend.apt.fooling_rates import EVAL_SEED, N_EVAL, PGD_EPS, batch_evaluate
from backend.apt.inference import classify, classify_all, describe_change, generate
from backend.apt.inputs import check_label
from backend.apt.judge import judge_probs
from backend.apt.loading import ATTACK_CARD, load_evaluation


@dataclass
class Digit:
    """A digit to attack: `Digit.held_out(i)`, `Digit.generated(label, seed)`, `Digit.drawn(array)`,
    `Digit.uploaded(file)`."""

    image: np.ndarray          # uint8 (32, 32, 3)
    label: int                 # its class (for a drawing or upload: the CNN's reading, until the user corrects it)
    source: str                # "test", "generated" or "drawn"
    cnn_reads: int             # what the plain CNN reads

    @classmethod
    def _make(cls, image: np.ndarray, label: int | None, source: str) -> Digit:
        reads = int(np.argmax(classify(image, "cnn")[0]))
        return cls(image, reads if label is None else int(label), source, reads)

    @classmethod
    def held_out(cls, index: int) -> Digit:
        """Digit #index of the card's attack evaluation set, test_set(N_EVAL, EVAL_SEED)."""
        if not 0 <= int(index) < N_EVAL:
            raise ValueError(f"Pick a test digit between 0 and {N_EVAL - 1}.")
        images, labels = test_set(N_EVAL, EVAL_SEED)
        return cls._make(images[int(index)], int(labels[int(index)]), "test")

    @classmethod
    def generated(cls, label: int, seed: int = 0) -> Digit:
        """A sample of the generator for class `label`."""
        return cls._make(generate(label, seed=seed, n=1)[0], check_label(label), "generated")

    @classmethod
    def drawn(cls, raw: np.ndarray) -> Digit:
        """A drawing turned into a digit like the data (`prepare_image`), labelled with the CNN's reading."""
        return cls._make(prepare_image(raw), None, "drawn")

    @classmethod
    def uploaded(cls, data) -> Digit:
        """An uploaded image file (bytes or file-like) as a digit; ValueError when it is no image or blank."""
        from backend.core.uploads import load_image

        return cls.drawn(load_image(data))


@dataclass
class AttackSettings:
    classifier: str = "cnn"
    target: int | None = None       # None: untargeted
    mode: str = "apt"               # "apt" or "apt+pgd"
    steps: int = 300                # max tuning steps
    seed: int = 0
    eps: float = DEFAULT_EPS        # PGD's L∞ budget, [0, 1] units
    adv_weight: float = 0.1
    lr: float = 1e-4                # chosen on validation digits (apt-discriminator card; PTI uses 3e-4)
    reg_weight: float = 1.0
    realism_weight: float = 0.0     # weight of the realism term −D(G'(w_p), y) (0: chosen on validation digits)

    @classmethod
    def from_values(cls, values: dict) -> AttackSettings:
        """From a mapping of widget values (unknown keys ignored; target "untargeted" or a digit)."""
        names = {f.name for f in dataclasses.fields(cls)}
        kw = {k: v for k, v in values.items() if k in names}
        if "target" in kw:
            kw["target"] = None if kw["target"] in (None, "untargeted") else check_label(kw["target"], "target class")
        return cls(**kw)


@dataclass
class Comparison:
    apt: AttackResult               # the APT (or APT + PGD) attack
    pgd_image: np.ndarray           # PGD-40 at settings.eps on the original
    pgd_probs: dict                 # classifier -> (10,)
    pgd_metrics: dict
    pgd_success: bool
    pgd_judge: np.ndarray           # the judge's (10,) probabilities on the PGD image
    settings: AttackSettings
    apt_name: str                   # "APT" or "APT + PGD"
    table: list = field(default_factory=list)  # one row per attack: fooled?, SSIM, L2, L∞, ..., each prediction

    def panels(self) -> list:
        """(uint8 image, caption) for original, pivot, APT, PGD and both change maps (|Δ| × 4)."""
        r, name = self.apt, self.apt.classifier
        return [(r.original, f"original, {name}: {_reading(r.probs_before[name])}, judge: {_reading(r.judge_before)}"),
                (r.reconstruction, f"pivot G(w_p), PSNR {r.metrics.get('pivot_psnr', 0):.1f} dB"),
                (r.adversarial, f"{self.apt_name}: {name} {_reading(r.probs_after[name])}, judge "
                                f"{_reading(r.judge_after)}"),
                (self.pgd_image, f"PGD ε={self.settings.eps}: {name} {_reading(self.pgd_probs[name])}, judge "
                                 f"{_reading(self.pgd_judge)}"),
                (_change_map(r.adversarial, r.original), f"|{self.apt_name} − original| × 4"),
                (_change_map(self.pgd_image, r.original), "|PGD − original| × 4")]

    def probabilities(self) -> dict:
        """classifier -> {"original", APT name, "PGD"} -> (10,) class probabilities."""
        a = self.apt
        return {c: {"original": a.probs_before[c], self.apt_name: a.probs_after[c], "PGD": self.pgd_probs[c]}
                for c in a.probs_after}

    def note(self) -> str:
        """One paragraph on the units and the pivot and locality numbers."""
        m = self.apt.metrics
        return (f"Digit class {self.apt.label}. L2, L∞ in [0, 1] pixel units; high-freq share = energy of the change "
                f"above 1/4 cycle per pixel. Pivot: PSNR {m.get('pivot_psnr', 0):.1f} dB, SSIM "
                f"{m.get('pivot_ssim', 0):.2f}. G' vs G at 100 other latents: RMSE "
                f"{m.get('rmse_change_other_latents', 0):.3f} (at the pivot {m.get('rmse_change_pivot', 0):.3f}).")

    def summary(self) -> dict:
        """JSON-ready: settings, outcome and metrics of both attacks."""
        a = self.apt
        return {"label": a.label, "target": a.target, "classifier": a.classifier, "mode": a.mode,
                "success": a.success, "steps": a.steps_used, "apt": a.metrics, "pgd": self.pgd_metrics,
                "settings": dataclasses.asdict(self.settings)}


def _reading(probs: np.ndarray) -> str:
    k = int(np.argmax(probs))
    return f"{k} ({probs[k]:.0%})"


def _change_map(a: np.ndarray, b: np.ndarray, gain: float = 4.0) -> np.ndarray:
    return np.clip(np.abs(a.astype(np.float32) - b.astype(np.float32)) * gain, 0, 255).astype(np.uint8)


def _table(cmp: Comparison) -> list:
    rows, name, y = [], cmp.apt.classifier, cmp.apt.label
    for label, m, probs, ok, judge in (
            (cmp.apt_name, cmp.apt.metrics, cmp.apt.probs_after, cmp.apt.success, cmp.apt.judge_after),
            (f"PGD ε={cmp.settings.eps}", cmp.pgd_metrics, cmp.pgd_probs, cmp.pgd_success, cmp.pgd_judge)):
        kept = int(np.argmax(judge)) == y
        rows.append({"attack": label, f"fools {name}": bool(ok), "judge reads": int(np.argmax(judge)),
                     "judge p(true class)": float(judge[y]), "fooled & kept": bool(ok and kept),
                     "SSIM": m["ssim"], "L2": m["l2"], "L∞": m["linf"],
                     "high-freq share": m["high_freq_share"], "feature dist. (P)": m["perceptual"],
                     **{f"pred {c}": int(np.argmax(p)) for c, p in probs.items()}})
    return rows


def compare_attacks(image, label: int, settings: AttackSettings | None = None, progress=None,
                    on_image=None) -> Comparison:
    """APT (or APT + PGD) on one digit beside PGD at the same eps, with metrics and every classifier's view."""
    s = settings or AttackSettings()
    res = attack(image, label, classifier=s.classifier, target=s.target, mode=s.mode, steps=s.steps, seed=s.seed,
                 eps=s.eps, progress=progress, on_image=on_image, adv_weight=s.adv_weight, lr=s.lr,
                 reg_weight=s.reg_weight, realism_weight=s.realism_weight)
    adv = pgd(res.original, res.label, classifier=s.classifier, eps=s.eps, steps=40, target=s.target)
    probs = classify_all(adv)
    cmp = Comparison(res, adv, probs, describe_change(res.original, adv),
                     fools(probs[s.classifier], res.label, s.target), judge_probs(adv[None])[0], s,
                     "APT + PGD" if res.mode == "apt+pgd" else "APT")
    cmp.table = _table(cmp)
    return cmp


@dataclass
class AttackReport:
    rows: list                      # one dict per (mode, eps, classifier): fooled, fooled-and-kept, SSIM, L2, L∞, ...
    n_images: int
    eps: float
    counting: str = ""
    sweep: list = field(default_factory=list)  # the validation grid that chose the settings (card only)
    sweep_n_images: int = 0
    selection: str = ""             # which split chose what (card only)
    judge: str = ""                 # the judge and its clean test accuracy (card only)


def attack_report() -> AttackReport | None:
    """The generator card's attack evaluation (None when its checkpoint holds none)."""
    ev = load_evaluation(ATTACK_CARD)
    if not ev.get("attacks"):
        return None
    a, sel = ev["attacks"], ev.get("selection") or {}
    chosen = ", ".join(f"{k} {v}" for k, v in (sel.get("chosen") or {}).items())
    selection = (f"Settings ({chosen}) chosen on {sel.get('split')}, test-split digits outside the headline ones, "
                 f"against the {sel.get('classifier')} classifier: most fooled-and-kept at mean SSIM ≥ "
                 f"{sel.get('min_ssim')}.") if sel else ""
    judge = f"Judge: {a.get('judge', '')}; clean test accuracy {a.get('judge_clean_test_acc', float('nan')):.3f}."
    return AttackReport(a["rows"], a["n_images"], a["eps"], a["counting"], sel.get("rows", []),
                        int(sel.get("n_images", 0)), selection, judge)


def run_fooling_rates(n: int, settings: AttackSettings | None = None, progress=None) -> AttackReport:
    """APT, APT+PGD and PGD at several eps against every classifier on the first `n` of the card's test
    digits, with these settings."""
    s = settings or AttackSettings()
    rows = batch_evaluate(int(n), seed=EVAL_SEED, modes=("apt", "apt+pgd", "pgd"), eps=s.eps, pgd_eps=PGD_EPS,
                          steps=s.steps, progress=progress, adv_weight=s.adv_weight, lr=s.lr,
                          reg_weight=s.reg_weight, realism_weight=s.realism_weight)
    return AttackReport(rows, int(n), s.eps)
