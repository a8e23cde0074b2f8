"""Scores and class labels: their checks, the minimum class size, and columns grouped by labels.

``positive`` is always the class a feature is listed for (passed tasks for a "correct"
feature, failed tasks for an "incorrect" one): a Bool[ndarray, "task"] shared by every
feature, or a Bool[ndarray, "task feature"] with one labelling per feature column.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

# A class needs two tasks: with one, an AUROC is the rank of a single task, its bootstrap
# cannot vary that task, and cross-validation has no fold to hold it out in.
MIN_PER_CLASS = 2

# A seed: an int, or a sequence of ints from which independent streams are derived as (*seed, i).
Seed = int | Sequence[int]


def as_scores_labels(scores: np.ndarray, positive: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``scores`` as Float64[ndarray, "task"] and ``positive`` as Bool[ndarray, "task"].

    Raises:
        ValueError: the two differ in length, or a score is not finite (a caller's bug, not
            a data condition: those give NaN statistics instead).
    """
    s = np.asarray(scores, dtype=np.float64).ravel()
    y = np.asarray(positive, dtype=bool).ravel()
    if s.shape != y.shape:
        raise ValueError(f"{s.size} scores for {y.size} labels")
    if not np.all(np.isfinite(s)):
        raise ValueError("scores must be finite")
    return s, y


def as_score_columns(scores: np.ndarray, positive: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``scores`` as Float64[ndarray, "task feature"] and ``positive`` as Bool[ndarray, "task feature"].

    A 1-D ``scores`` is one feature; a 1-D ``positive`` is shared by every feature.

    Raises:
        ValueError: shapes disagree or a score is not finite.
    """
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
    """Whether both classes of ``positive`` (Bool[ndarray, "task"]) hold at least ``minimum`` tasks."""
    y = np.asarray(positive, dtype=bool)
    n_pos = int(y.sum())
    return n_pos >= minimum and y.size - n_pos >= minimum


def label_groups(positive: np.ndarray) -> list[tuple[np.ndarray, np.ndarray]]:
    """Columns of ``positive`` (Bool[ndarray, "task feature"]) grouped by identical labelling.

    Returns:
        ``(labels, columns)`` pairs: labels Bool[ndarray, "task"], columns Int[ndarray, "k"],
        in order of first appearance. Features of one task set share one or two labellings
        ("correct" and "incorrect" features), so work done per labelling is done once or twice.
    """
    y = np.asarray(positive, dtype=bool)
    if y.shape[1] == 0:
        return []
    unique, first, inverse = np.unique(y.T, axis=0, return_index=True, return_inverse=True)
    order = np.argsort(first)
    return [(unique[g].copy(), np.flatnonzero(inverse.ravel() == g)) for g in order]
