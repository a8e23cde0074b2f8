"""F1 of the rule "positive when score > threshold": the best threshold, and its cross-validated F1."""

from __future__ import annotations

import numpy as np

from stats.folds import MAX_FOLDS, Seed, stratified_folds


def best_f1_threshold(scores: np.ndarray, positive: np.ndarray) -> tuple[float, float]:
    """The threshold ``t`` maximizing F1 of the rule "positive when score > t", and that F1.

    Candidates cut between consecutive distinct scores (midpoints), plus ``-inf`` (everything
    positive). On ties the highest threshold wins. ``(nan, nan)`` without positive tasks.
    """
    scores = np.asarray(scores, dtype=np.float64).ravel()
    positive = np.asarray(positive, dtype=bool).ravel()
    n_pos = int(positive.sum())
    if n_pos == 0 or scores.size == 0:
        return float("nan"), float("nan")
    values, inverse = np.unique(scores, return_inverse=True)  # ascending
    values, inverse = values[::-1], values.size - 1 - inverse.ravel()  # descending
    pos_at = np.bincount(inverse, weights=positive, minlength=values.size)
    all_at = np.bincount(inverse, minlength=values.size)
    tp, predicted = np.cumsum(pos_at), np.cumsum(all_at)  # predicting positive for scores >= values[j]
    f1 = 2 * tp / (predicted + n_pos)
    j = int(np.argmax(f1))  # first maximum: the highest threshold
    threshold = (values[j] + values[j + 1]) / 2 if j + 1 < values.size else -np.inf
    return float(threshold), float(f1[j])


def cross_validated_f1(
    scores: np.ndarray, positive: np.ndarray, *, max_folds: int = MAX_FOLDS, seed: Seed = 0
) -> tuple[float, int]:
    """Pooled out-of-fold F1 (each fold's threshold fitted on the other folds) and the fold count; ``(nan, 0)`` without folds."""
    scores = np.asarray(scores, dtype=np.float64).ravel()
    positive = np.asarray(positive, dtype=bool).ravel()
    folds = stratified_folds(positive, max_folds=max_folds, seed=seed)
    if not folds:
        return float("nan"), 0
    predicted = np.zeros(scores.size, dtype=bool)
    for train, test in folds:
        threshold, _ = best_f1_threshold(scores[train], positive[train])
        predicted[test] = scores[test] > threshold
    tp = int(np.sum(predicted & positive))
    fp = int(np.sum(predicted & ~positive))
    fn = int(np.sum(~predicted & positive))
    return float(2 * tp / (2 * tp + fp + fn)), len(folds)
