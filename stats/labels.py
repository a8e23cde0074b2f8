"""Checks of scores and class labels, the minimum class size, and columns grouped by labelling.

``positive`` is the class a feature is listed for (passed tasks for a "correct" feature, failed
ones for an "incorrect" one): Bool[ndarray, "task"] shared by every feature, or
Bool[ndarray, "task feature"] with one labelling per column.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

# With one task in a class an AUROC is one task's rank, its bootstrap cannot vary that task, and
# cross-validation has no fold to hold it out in.
MIN_PER_CLASS = 2

# An int, or a sequence of ints from which independent streams are derived as (*seed, i).
Seed = int | Sequence[int]


def as_scores_labels(scores: np.ndarray, positive: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Float64 scores and Bool labels, both 1-D; ValueError when lengths differ or a score is not finite."""
    s = np.asarray(scores, dtype=np.float64).ravel()
    y = np.asarray(positive, dtype=bool).ravel()
    if s.shape != y.shape:
        raise ValueError(f"{s.size} scores for {y.size} labels")
    if not np.all(np.isfinite(s)):
        raise ValueError("scores must be finite")
    return s, y


def as_score_columns(scores: np.ndarray, positive: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Scores and labels as (task, feature) arrays: a 1-D ``scores`` is one feature, a 1-D ``positive`` is shared."""
    s = np.asarray(scores, dtype=np.float64)
    if s.ndim == 1:
        s = s[:, None]
    if s.ndim != 2:
        raise ValueError(f"scores must be (task, feature), got shape {s.shape}")
    y = np.asarray(positive, dtype=bool)
    if y.ndim == 1:
        y = np.broadcast_to(y[:, None], s.shape)
    if y.shape != s.shape:
        raise ValueError(f"labels of shape {y.shape} for scores of shape {s.shape}")
    if not np.all(np.isfinite(s)):
        raise ValueError("scores must be finite")
    return s, y


def enough_per_class(positive: np.ndarray, minimum: int = MIN_PER_CLASS) -> bool:
    """Whether both classes of ``positive`` hold at least ``minimum`` tasks."""
    y = np.asarray(positive, dtype=bool)
    n_pos = int(y.sum())
    return n_pos >= minimum and y.size - n_pos >= minimum


def label_groups(positive: np.ndarray) -> list[tuple[np.ndarray, np.ndarray]]:
    """``(labels, columns)`` of the columns of ``positive`` (task, feature) sharing one labelling, by first appearance.

    A run's features share one or two labellings ("correct" and "incorrect"), so work per labelling is done once or twice.
    """
    y = np.asarray(positive, dtype=bool)
    if y.shape[1] == 0:
        return []
    unique, first, inverse = np.unique(y.T, axis=0, return_index=True, return_inverse=True)
    return [(unique[g].copy(), np.flatnonzero(inverse.ravel() == g)) for g in np.argsort(first)]
