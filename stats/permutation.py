"""One-sided label-permutation p-values of AUROC, and their Benjamini-Hochberg q-values.

A permutation shuffles the labels (class sizes kept); the scores' midranks do not change, so each
permuted AUROC is one rank sum and a block of permutations is one product ``labels[perm] @ ranks``,
shared by every feature of the task set. The feature is listed for its class, so the test counts
permutations at least as high: ``p = (1 + #{permuted >= observed}) / (1 + n_permutations)`` (the
+1, the observed labelling, keeps it valid for drawn permutations). Midranks are multiples of 1/2,
so rank sums are exact in float64 and ``>=`` needs no tolerance.
"""

from __future__ import annotations

import numpy as np
from scipy.stats import false_discovery_control, rankdata

from stats.labels import MIN_PER_CLASS, Seed, as_score_columns, as_scores_labels, enough_per_class, label_groups

N_PERMUTATIONS = 10_000
BLOCK = 1000  # permutations per matrix product (BLOCK x task float64, ~3 MB at 388 tasks)


def permutation_p_values(scores: np.ndarray, positive: np.ndarray, *, n_permutations: int = N_PERMUTATIONS,
                         seed: Seed = 0, min_per_class: int = MIN_PER_CLASS) -> np.ndarray:
    """One-sided permutation p-value of every column's AUROC: Float[ndarray, "feature"].

    Args:
        scores: Float[ndarray, "task feature"] (a 1-D array is one feature).
        positive: Bool[ndarray, "task"] shared by the features, or Bool[ndarray, "task feature"].
        n_permutations: label permutations, the same for every feature.
        seed: seeds the permutations; a column's p-value does not depend on the other columns.
        min_per_class: NaN below it (the test is valid down to one, which the probe's folds use).
    """
    s, y = as_score_columns(scores, positive)
    n_tasks, n_features = s.shape
    out = np.full(n_features, np.nan)
    groups = [(labels, cols) for labels, cols in label_groups(y) if enough_per_class(labels, max(1, min_per_class))]
    if not groups:
        return out
    ranks = rankdata(s, axis=0)
    observed = [ranks[labels][:, cols].sum(axis=0) for labels, cols in groups]
    at_least = [np.zeros(cols.size, dtype=np.int64) for _, cols in groups]
    rng = np.random.default_rng(seed)
    for start in range(0, n_permutations, BLOCK):
        m = min(BLOCK, n_permutations - start)
        perm = rng.permuted(np.broadcast_to(np.arange(n_tasks), (m, n_tasks)), axis=1)
        for g, (labels, cols) in enumerate(groups):
            permuted_sums = labels[perm].astype(np.float64) @ ranks[:, cols]  # (m, k)
            at_least[g] += np.count_nonzero(permuted_sums >= observed[g], axis=0)
    for (_, cols), count in zip(groups, at_least):
        out[cols] = (1 + count) / (1 + n_permutations)
    return out


def permutation_p_value(scores: np.ndarray, positive: np.ndarray, *, n_permutations: int = N_PERMUTATIONS,
                        seed: Seed = 0, min_per_class: int = MIN_PER_CLASS) -> float:
    """One-sided permutation p-value of one feature's AUROC."""
    s, y = as_scores_labels(scores, positive)
    p = permutation_p_values(s[:, None], y, n_permutations=n_permutations, seed=seed, min_per_class=min_per_class)
    return float(p[0])


def bh_q_values(p_values: np.ndarray) -> np.ndarray:
    """Benjamini-Hochberg adjusted p-values, same shape; NaN p-values (not scored) stay NaN and are not counted."""
    p = np.asarray(p_values, dtype=np.float64)
    q = np.full(p.shape, np.nan)
    tested = ~np.isnan(p)
    if tested.any():
        q[tested] = false_discovery_control(p[tested], method="bh")
    return q
