"""APT page back end: Adversarial Pivotal Tuning on handwritten digits.

Christensen, Snæbjarnarson, Dittadi, Belongie, Benaim, "Assessing Neural Network Robustness via
Adversarial Pivotal Tuning", WACV 2024 (arXiv:2211.09782). Invert a digit into a pivot latent of a
class-conditional generator (a cVAE decoder), tune the generator's weights until a classifier is fooled
while the image stays close to the input, and compare with a pixel-space PGD attack.

Public API (numpy in, numpy out; images uint8 (32, 32, 3)):

    models = load_models()                       # cached; models.classifiers == ["cnn", "mlp", "robust"]
    images, labels = test_set(n=20, seed=0)
    probs = classify(images, classifier="cnn")   # (N, 10)
    res = attack(image, label, classifier="cnn", target=None, mode="apt", steps=None, seed=0)
    adv = pgd(image, label, classifier="cnn", eps=8/255, steps=40)
"""

from __future__ import annotations

from backend.apt.api import (
    CLASSIFIERS,
    AttackResult,
    Models,
    attack,
    batch_evaluate,
    classify,
    classify_all,
    describe_change,
    generate,
    load_models,
    pgd,
)
from backend.apt.data import prepare_image, test_set

__all__ = [
    "CLASSIFIERS",
    "AttackResult",
    "Models",
    "attack",
    "batch_evaluate",
    "classify",
    "classify_all",
    "describe_change",
    "generate",
    "load_models",
    "pgd",
    "prepare_image",
    "test_set",
]
