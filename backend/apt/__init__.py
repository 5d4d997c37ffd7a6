"""APT page back end: Adversarial Pivotal Tuning on handwritten digits.

Christensen, Snæbjarnarson, Dittadi, Belongie, Benaim, "Assessing Neural Network Robustness via
Adversarial Pivotal Tuning", WACV 2024 (arXiv:2211.09782). Invert a digit into a pivot latent of a
class-conditional generator (a cVAE decoder), tune the generator's weights until a classifier is fooled
while the image stays close to the input, and compare with a pixel-space PGD attack; an independent judge (an RBF-SVM on the 8×8 digits)
measures whether the attacked images still show their class ("fooled and kept").

Public API (numpy in, numpy out; images uint8 (32, 32, 3)):

    models = load_models()                       # cached; models.classifiers == ["cnn", "mlp", "robust"]
    images, labels = test_set(n=20, seed=0)
    probs = classify(images, classifier="cnn")   # (N, 10)
    res = attack(image, label, classifier="cnn", target=None, mode="apt", steps=None, seed=0)
    adv = pgd(image, label, classifier="cnn", eps=8/255, steps=40)
    digit = Digit.held_out(7)                    # a digit of the card's evaluation set
    digit = Digit.generated(3, seed=0)           # (also Digit.drawn(array), Digit.uploaded(file))
    cmp = compare_attacks(digit.image, digit.label, AttackSettings(classifier="robust"))   # the page's one call
    report = attack_report()                     # the apt-discriminator card's attack table and validation grid
    probs = judge_probs(images)                  # the independent judge (RBF-SVM on 8×8), never used by attacks
    val_images, val_labels = validation_set(30, seed=2)   # the digits every setting is chosen on
"""

from __future__ import annotations

from backend.apt.attacks import DEFAULT_EPS, AttackResult, attack, fools, forget_pivots, pgd
from backend.apt.comparison import (
    AttackReport,
    AttackSettings,
    Comparison,
    Digit,
    attack_report,
    compare_attacks,
    run_fooling_rates,
)
from backend.apt.data import prepare_image, test_set, validation_set
from backend.apt.fooling_rates import EVAL_SEED, N_EVAL, batch_evaluate
from backend.apt.inference import classify, classify_all, describe_change, generate
from backend.apt.inputs import MODES, apt_settings
from backend.apt.judge import judge_probs
from backend.apt.loading import CLASSIFIERS, Models, load_evaluation, load_models

__all__ = [
    "CLASSIFIERS",
    "DEFAULT_EPS",
    "EVAL_SEED",
    "MODES",
    "N_EVAL",
    "AttackReport",
    "AttackResult",
    "AttackSettings",
    "Comparison",
    "Digit",
    "Models",
    "apt_settings",
    "attack",
    "attack_report",
    "batch_evaluate",
    "classify",
    "classify_all",
    "compare_attacks",
    "describe_change",
    "fools",
    "forget_pivots",
    "generate",
    "judge_probs",
    "load_evaluation",
    "load_models",
    "pgd",
    "prepare_image",
    "run_fooling_rates",
    "test_set",
    "validation_set",
]
