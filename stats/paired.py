"""Paired bootstrap of the AUROC difference between two runs on the same tasks.

The two runs (say the instruct and the base model) are scored on their shared tasks, aligned
so that row i of both is task i. Each resample draws the tasks once and weights both runs
with the same multiplicities, so the interval accounts for the runs sharing their tasks.
Strata are the four joint outcomes (positive in a, positive in b): stratifying on them keeps
both runs' class sizes fixed, so no resample lacks a class in either run. Identical runs give
a difference of exactly 0 in every resample.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from stats.auroc import auroc, weighted_auroc
from stats.bootstrap import CI_LEVEL, N_BOOTSTRAP, Seed, percentile_interval, stratified_multiplicities
from stats.labels import as_scores_labels, enough_per_class


@dataclass(frozen=True)
class Difference:
    """``auroc_a - auroc_b`` and its paired percentile interval (NaN where not computable)."""

    auroc_a: float
    auroc_b: float
    difference: float
    low: float
    high: float


def paired_auroc_difference(
    scores_a: np.ndarray,
    positive_a: np.ndarray,
    scores_b: np.ndarray,
    positive_b: np.ndarray,
    *,
    n_resamples: int = N_BOOTSTRAP,
    level: float = CI_LEVEL,
    seed: Seed = 0,
) -> Difference:
    """AUROC of run a minus AUROC of run b, with a paired stratified bootstrap interval.

    Args:
        scores_a, scores_b: Float[ndarray, "task"], one feature's scores on the shared tasks,
            row i of both the same task.
        positive_a, positive_b: Bool[ndarray, "task"], each run's class the feature is listed
            for (each run has its own outcomes on a task).
        n_resamples: bootstrap resamples.
        level: interval coverage.
        seed: seeds the resamples.

    Returns:
        NaNs when either run has fewer than ``MIN_PER_CLASS`` tasks in a class.
    """
    sa, ya = as_scores_labels(scores_a, positive_a)
    sb, yb = as_scores_labels(scores_b, positive_b)
    if sa.size != sb.size:
        raise ValueError(f"runs are paired on shared tasks: {sa.size} and {sb.size} tasks")
    if not (enough_per_class(ya) and enough_per_class(yb)):
        nan = float("nan")
        return Difference(nan, nan, nan, nan, nan)
    weights = stratified_multiplicities(2 * ya.astype(np.int64) + yb, n_resamples, np.random.default_rng(seed))
    diffs = weighted_auroc(sa, ya, weights) - weighted_auroc(sb, yb, weights)
    low, high = percentile_interval(diffs, level)
    a, b = auroc(sa, ya), auroc(sb, yb)
    return Difference(a, b, a - b, low, high)
