"""Stratified percentile bootstrap 95 % intervals of AUROC, for one run and paired between two runs.

A resample draws, within each stratum (for one run: the two classes), as many tasks as the stratum
holds, with replacement, so no resample lacks a class. It is kept as multiplicities (how often each
task was drawn) and scored by :func:`stats.auroc.weighted_auroc`, never as a resampled array.
Seeded: the same seed and task set give the same resamples, whichever other features are scored.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from stats.auroc import auroc, auroc_columns, split_weighted_auroc, weighted_auroc
from stats.labels import Seed, as_score_columns, as_scores_labels, enough_per_class, label_groups

N_BOOTSTRAP = 1000
CI_LEVEL = 0.95


@dataclass(frozen=True)
class Interval:
    """A point estimate and its percentile interval (NaN where not computable)."""

    estimate: float
    low: float
    high: float


@dataclass(frozen=True)
class Difference:
    """``auroc_a - auroc_b`` and its paired percentile interval (NaN where not computable)."""

    auroc_a: float
    auroc_b: float
    difference: float
    low: float
    high: float


def stratified_multiplicities(strata: np.ndarray, n_resamples: int, rng: np.random.Generator) -> np.ndarray:
    """How often each task is drawn in each resample: Float[ndarray, "resample task"].

    Each stratum (value of ``strata``, ascending) is resampled with replacement to its own size.
    """
    strata = np.asarray(strata).ravel()
    counts = np.zeros((n_resamples, strata.size))
    for value in np.unique(strata):
        members = np.flatnonzero(strata == value)
        k = members.size
        draws = rng.integers(0, k, size=(n_resamples, k)) + k * np.arange(n_resamples)[:, None]
        counts[:, members] = np.bincount(draws.ravel(), minlength=n_resamples * k).reshape(n_resamples, k)
    return counts


def percentile_interval(values: np.ndarray, level: float = CI_LEVEL) -> tuple[float, float]:
    """The central ``level`` percentile interval of ``values``; NaNs when any is NaN."""
    values = np.asarray(values, dtype=np.float64)
    if values.size == 0 or np.isnan(values).any():
        return float("nan"), float("nan")
    tail = 100 * (1 - level) / 2
    low, high = np.percentile(values, [tail, 100 - tail])
    return float(low), float(high)


def bootstrap_auroc(scores: np.ndarray, positive: np.ndarray, *, n_resamples: int = N_BOOTSTRAP,
                    level: float = CI_LEVEL, seed: Seed = 0) -> Interval:
    """AUROC (``roc_auc_score``) of one feature and its stratified bootstrap interval; NaNs when a class is too small."""
    s, y = as_scores_labels(scores, positive)
    _, low, high = bootstrap_auroc_columns(s, y, n_resamples=n_resamples, level=level, seed=seed)
    return Interval(auroc(s, y), float(low[0]), float(high[0]))


def bootstrap_auroc_columns(scores: np.ndarray, positive: np.ndarray, *, n_resamples: int = N_BOOTSTRAP,
                            level: float = CI_LEVEL, seed: Seed = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """AUROC, interval low and high of every column of ``scores`` (task, feature): three Float[ndarray, "feature"].

    A column gets the same interval as :func:`bootstrap_auroc` of that column alone with the same seed.
    """
    s, y = as_score_columns(scores, positive)
    point = auroc_columns(s, y)
    low = np.full(s.shape[1], np.nan)
    high = np.full(s.shape[1], np.nan)
    for labels, cols in label_groups(y):
        if not enough_per_class(labels):
            continue
        weights = stratified_multiplicities(labels, n_resamples, np.random.default_rng(seed))
        w_pos, w_neg = weights[:, labels], weights[:, ~labels]  # split once for all columns
        for c in cols:
            resampled = split_weighted_auroc(s[labels, c], s[~labels, c], w_pos, w_neg)
            low[c], high[c] = percentile_interval(resampled, level)
    return point, low, high


def paired_auroc_difference(scores_a: np.ndarray, positive_a: np.ndarray, scores_b: np.ndarray,
                            positive_b: np.ndarray, *, n_resamples: int = N_BOOTSTRAP, level: float = CI_LEVEL,
                            seed: Seed = 0) -> Difference:
    """AUROC of run a minus that of run b on the same tasks (row i of both), with a paired bootstrap interval.

    Each resample weights both runs with the same multiplicities, stratified on the four joint
    outcomes, so both runs keep their class sizes; identical runs differ by exactly 0 in every
    resample. NaNs when either run has a class that is too small.
    """
    sa, ya = as_scores_labels(scores_a, positive_a)
    sb, yb = as_scores_labels(scores_b, positive_b)
    if sa.size != sb.size:
        raise ValueError(f"runs are paired on shared tasks: {sa.size} and {sb.size} tasks")
    if not (enough_per_class(ya) and enough_per_class(yb)):
        nan = float("nan")
        return Difference(nan, nan, nan, nan, nan)
    weights = stratified_multiplicities(2 * ya.astype(np.int64) + yb, n_resamples, np.random.default_rng(seed))
    low, high = percentile_interval(weighted_auroc(sa, ya, weights) - weighted_auroc(sb, yb, weights), level)
    a, b = auroc(sa, ya), auroc(sb, yb)
    return Difference(a, b, a - b, low, high)
