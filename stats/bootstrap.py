"""Stratified percentile bootstrap 95 % interval of AUROC.

A resample draws, within each stratum (for one run: the two classes), as many tasks as the
stratum holds, with replacement: class sizes stay fixed, so no resample lacks a class. A
resample is represented by its multiplicities (how often each task was drawn), and its AUROC
by :func:`stats.auroc.weighted_auroc`, so no resampled array is ever built. The interval is
the 2.5th and 97.5th percentiles of the resampled AUROCs.

Seeded: the same seed and task set give the same resamples, whichever other features are
scored (every feature of one task set shares the resamples).
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


def stratified_multiplicities(strata: np.ndarray, n_resamples: int, rng: np.random.Generator) -> np.ndarray:
    """How often each task is drawn in each resample: Float[ndarray, "resample task"].

    Args:
        strata: Int[ndarray, "task"] (or Bool), the stratum of each task; each stratum is
            resampled with replacement to its own size, strata in ascending order of value.
        n_resamples: rows.
        rng: the draws.
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
    """The central ``level`` percentile interval of Float[ndarray, "resample"]; NaNs when any is NaN."""
    values = np.asarray(values, dtype=np.float64)
    if values.size == 0 or np.isnan(values).any():
        return float("nan"), float("nan")
    tail = 100 * (1 - level) / 2
    low, high = np.percentile(values, [tail, 100 - tail])
    return float(low), float(high)


def bootstrap_auroc(
    scores: np.ndarray,
    positive: np.ndarray,
    *,
    n_resamples: int = N_BOOTSTRAP,
    level: float = CI_LEVEL,
    seed: Seed = 0,
) -> Interval:
    """AUROC (``roc_auc_score``) and its stratified bootstrap interval for one feature.

    Args:
        scores: Float[ndarray, "task"].
        positive: Bool[ndarray, "task"], the class the feature is listed for.
        n_resamples: bootstrap resamples.
        level: interval coverage.
        seed: seeds the resamples.

    Returns:
        NaNs when a class has fewer than ``MIN_PER_CLASS`` tasks.
    """
    s, y = as_scores_labels(scores, positive)
    if not enough_per_class(y):
        return Interval(float("nan"), float("nan"), float("nan"))
    weights = stratified_multiplicities(y, n_resamples, np.random.default_rng(seed))
    low, high = percentile_interval(weighted_auroc(s, y, weights), level)
    return Interval(auroc(s, y), low, high)


def bootstrap_auroc_columns(
    scores: np.ndarray,
    positive: np.ndarray,
    *,
    n_resamples: int = N_BOOTSTRAP,
    level: float = CI_LEVEL,
    seed: Seed = 0,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """AUROC, interval low and interval high of every column: three Float[ndarray, "feature"].

    Args:
        scores: Float[ndarray, "task feature"].
        positive: Bool[ndarray, "task"] or Bool[ndarray, "task feature"].
        n_resamples, level, seed: as :func:`bootstrap_auroc`; a column gets the same interval
            as :func:`bootstrap_auroc` of that column alone with the same seed.
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
