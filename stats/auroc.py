"""AUROC: P(score of a positive task > score of a negative one), ties counting one half.

:func:`auroc` is ``roc_auc_score``; :func:`auroc_columns` computes many features at once from
midranks (Mann-Whitney ``U = R_pos - n_pos (n_pos + 1) / 2``, ``AUROC = U / (n_pos n_neg)``: the
null latents need thousands per layer); :func:`weighted_auroc` scores one feature under many
task weightings (bootstrap multiplicities) from one sort. The tests check all three against
``roc_auc_score``.
"""

from __future__ import annotations

import numpy as np
from scipy.stats import rankdata
from sklearn.metrics import roc_auc_score

from stats.labels import MIN_PER_CLASS, as_score_columns, as_scores_labels, enough_per_class, label_groups


def auroc(scores: np.ndarray, positive: np.ndarray) -> float:
    """AUROC of Float[ndarray, "task"] scores for the class ``positive``; NaN when a class is too small."""
    s, y = as_scores_labels(scores, positive)
    if not enough_per_class(y):
        return float("nan")
    return float(roc_auc_score(y, s))


def auroc_columns(scores: np.ndarray, positive: np.ndarray) -> np.ndarray:
    """AUROC of every column of ``scores`` (task, feature): Float[ndarray, "feature"].

    ``positive`` is Bool[ndarray, "task"] or one labelling per column; NaN where a class is too small.
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
    """AUROC of one feature under each row of Float[ndarray, "resample task"] weights: Float[ndarray, "resample"].

    ``sum_ij w_i w_j [s_i > s_j, or 1/2 if equal] / (sum_pos w)(sum_neg w)`` over positive i and
    negative j: with integer weights, the AUROC of the resample. NaN for a resample without weight
    in a class, and for all of them when a class is too small.
    """
    s, y = as_scores_labels(scores, positive)
    w = np.asarray(weights, dtype=np.float64)
    if w.ndim != 2 or w.shape[1] != s.size:
        raise ValueError(f"weights of shape {w.shape} for {s.size} tasks")
    if not enough_per_class(y):
        return np.full(w.shape[0], np.nan)
    return split_weighted_auroc(s[y], s[~y], w[:, y], w[:, ~y])


def split_weighted_auroc(pos: np.ndarray, neg: np.ndarray, w_pos: np.ndarray, w_neg: np.ndarray) -> np.ndarray:
    """:func:`weighted_auroc` with the classes (scores and weights) already apart; no class size check.

    The running sum of negative weight up to each positive's score counts its wins; the negatives
    tied with it (between the left and right insertion points) count one half.
    """
    order = np.argsort(neg, kind="stable")
    neg_sorted = neg[order]
    cum = np.zeros((w_neg.shape[0], neg.size + 1))
    np.cumsum(w_neg[:, order], axis=1, out=cum[:, 1:])  # cum[:, m]: weight of the m lowest negatives
    left = np.searchsorted(neg_sorted, pos, side="left")
    right = np.searchsorted(neg_sorted, pos, side="right")
    numerator = 0.5 * np.einsum("bi,bi->b", w_pos, cum[:, left] + cum[:, right])
    denominator = w_pos.sum(axis=1) * cum[:, -1]
    out = np.full(w_pos.shape[0], np.nan)
    np.divide(numerator, denominator, out=out, where=denominator > 0)
    return out
