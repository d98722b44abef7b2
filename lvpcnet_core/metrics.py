"""Accuracy figures as remote-sensing papers report them (OA, AA, kappa in percent)."""
from __future__ import annotations

import numpy as np


def confusion(reference: np.ndarray, predicted: np.ndarray, n_classes: int) -> np.ndarray:
    """(K, K) counts, rows = reference class, columns = predicted class (indices 0..K-1)."""
    from sklearn.metrics import confusion_matrix

    return confusion_matrix(reference, predicted, labels=np.arange(n_classes))


def summarise(matrix: np.ndarray, class_names: list[str]) -> dict:
    """OA, AA, kappa (percent), per-class producer's and user's accuracy and F1 (percent), and the matrix."""
    matrix = np.asarray(matrix, dtype=np.float64)
    total = matrix.sum()
    diagonal = np.diag(matrix)
    reference, predicted = matrix.sum(1), matrix.sum(0)
    with np.errstate(invalid="ignore", divide="ignore"):
        producers = np.where(reference > 0, diagonal / reference, np.nan)
        users = np.where(predicted > 0, diagonal / predicted, np.nan)
        f1 = np.where(reference + predicted > 0, 2 * diagonal / (reference + predicted), np.nan)
    oa = diagonal.sum() / total if total else float("nan")
    expected = (reference * predicted).sum() / total**2 if total else float("nan")
    kappa = (oa - expected) / (1 - expected) if total and expected < 1 else float("nan")
    present = reference > 0
    return {
        "oa": 100 * float(oa),
        "aa": 100 * float(np.nanmean(producers[present])) if present.any() else float("nan"),
        "kappa": 100 * float(kappa),
        "n": int(total),
        "per_class": {name: {"producers_accuracy": _pct(p), "users_accuracy": _pct(u), "f1": _pct(f),
                             "reference_pixels": int(n)}
                      for name, p, u, f, n in zip(class_names, producers, users, f1, reference)},
        "confusion": matrix.astype(int).tolist(),
        "class_names": list(class_names),
    }


def _pct(value: float) -> float | None:
    return None if np.isnan(value) else 100 * float(value)
