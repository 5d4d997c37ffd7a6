"""The independent judge of class preservation: an RBF-kernel SVM on the native 8×8 digits.

It is of another family than the attacked networks (a kernel machine, no gradients), sees the images at
the scans' own 8×8 resolution (4×4 average pooling of the 32×32 images, the inverse of the bilinear
upsampling up to rounding), is fitted on the training split only, and is never called by an attack: it
reads the final uint8 images afterwards (numpy in, numpy out). "Fooled and kept" = the attacked
classifier is wrong and the judge still reads the true class.
"""

from __future__ import annotations

import threading

import numpy as np

JUDGE = {"kernel": "rbf", "C": 10.0, "gamma": "scale"}
DESCRIPTION = ("RBF-SVM (C=10, gamma='scale'; sigmoid-calibrated probabilities, 5-fold) on the 8×8 digits "
               "(4×4 average pooling of the 32×32 images), fitted on the training split")
_LOCK = threading.Lock()
_FITTED: dict = {}


def native(images: np.ndarray) -> np.ndarray:
    """uint8 (N, 32, 32[, 3]) -> float64 (N, 64) in [0, 1]: the 8×8 digit each image shows."""
    if not isinstance(images, np.ndarray) or images.dtype != np.uint8:  # never a tensor of an attack's graph
        raise ValueError("The judge reads uint8 numpy images (the attacks' final outputs).")
    a = images
    if a.ndim == 4:
        a = a[..., :3].astype(np.float64).mean(-1)
    a = a.astype(np.float64) / 255.0
    n, h, w = a.shape
    return a.reshape(n, h // 4, 4, w // 4, 4).mean((2, 4)).reshape(n, -1)


def fit_judge():
    """The judge fitted on the training split's digits (uint8 32×32, as the attacks see them); cached."""
    with _LOCK:
        if "svm" not in _FITTED:
            from sklearn.calibration import CalibratedClassifierCV
            from sklearn.svm import SVC

            from backend.apt.data import split_arrays, to_uint8

            x, y = split_arrays("train")
            svm = CalibratedClassifierCV(SVC(**JUDGE), method="sigmoid", cv=5, ensemble=False)
            _FITTED["svm"] = svm.fit(native(to_uint8(x)), y)
        return _FITTED["svm"]


def judge_probs(images: np.ndarray) -> np.ndarray:
    """The judge's class probabilities (N, 10) for uint8 images (N, 32, 32, 3)."""
    return fit_judge().predict_proba(native(images))


def judge_reads(images: np.ndarray) -> np.ndarray:
    """The judge's reading (N,) of uint8 images (N, 32, 32, 3): the most probable class."""
    return judge_probs(images).argmax(1).astype(np.int64)


def judge_accuracy(split: str = "test") -> float:
    """The judge's accuracy on a clean split."""
    from backend.apt.data import split_arrays, to_uint8

    x, y = split_arrays(split)
    return float((judge_reads(to_uint8(x)) == y).mean())


def fooled_and_kept(fooled: np.ndarray, images: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """Per image: the attacked classifier was fooled and the judge, re-reading the attacked image, still
    reads the true label."""
    return np.asarray(fooled, bool) & (judge_reads(images) == np.asarray(labels))
