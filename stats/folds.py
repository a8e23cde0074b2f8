"""Stratified cross-validation folds (scikit-learn's ``StratifiedKFold``), one splitter for every caller.

``k = min(max_folds, size of the smaller class)``, so every fold holds both classes; no folds when
that class has fewer than ``MIN_PER_CLASS`` tasks. Any ``Seed`` becomes the integer ``random_state``.
"""

from __future__ import annotations

import numpy as np
from sklearn.model_selection import StratifiedKFold

from stats.labels import MIN_PER_CLASS, Seed

MAX_FOLDS = 5


def fold_count(positive: np.ndarray, max_folds: int = MAX_FOLDS) -> int:
    """Folds for the labels ``positive``: 0 when a class has fewer than ``MIN_PER_CLASS`` tasks."""
    y = np.asarray(positive, dtype=bool).ravel()
    smaller = min(int(y.sum()), int((~y).sum()))
    return min(max_folds, smaller) if smaller >= MIN_PER_CLASS else 0


def stratified_folds(positive: np.ndarray, *, max_folds: int = MAX_FOLDS,
                     seed: Seed = 0) -> list[tuple[np.ndarray, np.ndarray]]:
    """``(train, test)`` index arrays of each fold; an empty list when :func:`fold_count` is 0."""
    y = np.asarray(positive, dtype=bool).ravel()
    k = fold_count(y, max_folds)
    if k == 0:
        return []
    state = int(np.random.default_rng(seed).integers(2**31))
    splitter = StratifiedKFold(n_splits=k, shuffle=True, random_state=state)
    return list(splitter.split(np.zeros((y.size, 1)), y))
