"""AUROC: P(score of a positive task > score of a negative one), ties counting one half.

Three forms, one definition:

- :func:`auroc`: one feature, ``sklearn.metrics.roc_auc_score``.
- :func:`auroc_columns`: many features at once from midranks (the Mann-Whitney U statistic,
  ``U = R_pos - n_pos (n_pos + 1) / 2``, ``AUROC = U / (n_pos n_neg)``); the null latents need
  thousands of AUROCs per layer, where one scikit-learn call each would cost seconds.
- :func:`weighted_auroc`: one feature under many task weightings at once (the multiplicities of
  bootstrap resamples), from one sort of the negative scores.

The tests check all three against ``roc_auc_score``.
"""

from __future__ import annotations

import numpy as np
from scipy.stats import rankdata
from sklearn.metrics import roc_auc_score

from stats.labels import MIN_PER_CLASS, as_score_columns, as_scores_labels, enough_per_class, label_groups


def auroc(scores: np.ndarray, positive: np.ndarray) -> float:
    """AUROC of ``scores`` (Float[ndarray, "task"]) for the class ``positive`` (Bool[ndarray, "task"]).

    NaN when a class has fewer than ``MIN_PER_CLASS`` tasks.
    """
    s, y = as_scores_labels(scores, positive)
    if not enough_per_class(y):
        return float("nan")
    return float(roc_auc_score(y, s))


def auroc_columns(scores: np.ndarray, positive: np.ndarray) -> np.ndarray:
    """AUROC of every column: Float[ndarray, "feature"].

    Args:
        scores: Float[ndarray, "task feature"] (a 1-D array is one feature).
        positive: Bool[ndarray, "task"] shared by the features, or Bool[ndarray, "task feature"].

    Returns:
        One AUROC per feature; NaN where a class has fewer than ``MIN_PER_CLASS`` tasks.
    """
    s, y = as_score_columns(scores, positive)
    out = np.full(s.shape[1], np.nan)
    if s.shape[0] == 0:
        return out
    ranks = rankdata(s, axis=0)  # midranks: a tie between classes counts one half
    for labels, cols in label_groups(y):
        n_pos = int(labels.sum())
        n_neg = labels.size - n_pos
        if min(n_pos, n_neg) < MIN_PER_CLASS:
            continue
        rank_sum = ranks[labels][:, cols].sum(axis=0)
        out[cols] = (rank_sum - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg)
    return out


def weighted_auroc(scores: np.ndarray, positive: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """AUROC of one feature under each row of task weights: Float[ndarray, "resample"].

    With integer weights (a bootstrap resample's multiplicities) this is the AUROC of the
    resample: ``sum_ij w_i w_j [s_i > s_j, or 1/2 if equal] / (sum_pos w)(sum_neg w)`` over
    positive i and negative j.

    Args:
        scores: Float[ndarray, "task"].
        positive: Bool[ndarray, "task"].
        weights: Float[ndarray, "resample task"], non-negative.

    Returns:
        NaN for a resample whose positive or negative weight is zero, and for all of them when
        a class has fewer than ``MIN_PER_CLASS`` tasks.
    """
    s, y = as_scores_labels(scores, positive)
    w = np.asarray(weights, dtype=np.float64)
    if w.ndim != 2 or w.shape[1] != s.size:
        raise ValueError(f"weights of shape {w.shape} for {s.size} tasks")
    if not enough_per_class(y):
        return np.full(w.shape[0], np.nan)
    return split_weighted_auroc(s[y], s[~y], w[:, y], w[:, ~y])


def split_weighted_auroc(
    pos: np.ndarray, neg: np.ndarray, w_pos: np.ndarray, w_neg: np.ndarray
) -> np.ndarray:
    """:func:`weighted_auroc` with the classes already apart: Float[ndarray, "resample"].

    ``pos`` Float[ndarray, "n_pos"] and ``neg`` Float[ndarray, "n_neg"] scores, ``w_pos``
    Float[ndarray, "resample n_pos"] and ``w_neg`` Float[ndarray, "resample n_neg"] weights.
    (Callers scoring many features under the same resamples split the weights once.) No class
    size check: NaN only where a resample's class weight is zero.

    From one sort of the negatives: the running sum of negative weight up to each positive's
    score counts its wins, the negatives tied with it (between the left and right insertion
    points) count one half. O(resample x task) per feature.
    """
    order = np.argsort(neg, kind="stable")
    neg_sorted = neg[order]
    cum = np.zeros((w_neg.shape[0], neg.size + 1))
    np.cumsum(w_neg[:, order], axis=1, out=cum[:, 1:])  # cum[:, m]: weight of the m lowest negatives
    left = np.searchsorted(neg_sorted, pos, side="left")  # negatives strictly below
    right = np.searchsorted(neg_sorted, pos, side="right")  # ... or tied
    numerator = 0.5 * np.einsum("bi,bi->b", w_pos, cum[:, left] + cum[:, right])
    denominator = w_pos.sum(axis=1) * cum[:, -1]
    out = np.full(w_pos.shape[0], np.nan)
    np.divide(numerator, denominator, out=out, where=denominator > 0)
    return out
