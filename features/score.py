"""How well one SAE latent's activation separates the tasks of its class from the others.

Pure numpy. Shapes: ``acts`` Float[ndarray, "task"] (one latent's activation per task),
``positive`` Bool[ndarray, "task"] (the class the feature is listed for: passed tasks for a
"correct" feature, failed tasks for an "incorrect" one). Every statistic is NaN, never an
exception, when a class has no tasks (a weak model may pass none).

- AUROC: P(activation of a positive task > that of a negative one), ties counting one half
  (the Mann-Whitney statistic, as ``report.separation.rank_auroc`` computes it from ranks;
  here from the pairwise comparison matrix, which the bootstrap reweights).
- 95 % interval: percentile bootstrap, resampling tasks with replacement within each class
  (class sizes fixed, so no resample lacks a class), seeded.
- F1: the threshold maximizing F1 is fitted on the other folds only (stratified k-fold,
  k = min(max_folds, n_positive, n_negative), seeded) and applied to the held-out fold; the
  held-out predictions are pooled into one F1.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

N_BOOTSTRAP = 1000
CI_LEVEL = 0.95
MAX_FOLDS = 5
BOOTSTRAP_BLOCK = 250  # resamples evaluated at once (memory: block x n_negative floats)


@dataclass(frozen=True)
class FeatureStats:
    """The statistics of one latent (NaN where not computable)."""

    n_tasks: int
    n_positive: int
    n_negative: int
    auroc: float
    auroc_ci_low: float
    auroc_ci_high: float
    fire_frac: float
    fire_frac_positive: float
    fire_frac_negative: float
    mean_act_positive: float
    mean_act_negative: float
    f1_cv: float
    f1_cv_folds: int
    f1_threshold: float
    f1_all_positive: float


def score_feature(
    acts: np.ndarray,
    positive: np.ndarray,
    *,
    rng: np.random.Generator,
    n_bootstrap: int = N_BOOTSTRAP,
    max_folds: int = MAX_FOLDS,
) -> FeatureStats:
    """Every statistic of one latent (module docstring).

    Args:
        acts: activations, one per task (finite).
        positive: the feature's class.
        rng: seeds the bootstrap and the folds (one generator per feature keeps each
            feature's numbers independent of which others are scored).
        n_bootstrap: bootstrap resamples.
        max_folds: the most cross-validation folds.
    """
    acts = np.asarray(acts, dtype=np.float64).ravel()
    positive = np.asarray(positive, dtype=bool).ravel()
    if acts.shape != positive.shape:
        raise ValueError(f"{acts.size} activations for {positive.size} labels")
    if not np.all(np.isfinite(acts)):
        raise ValueError("activations must be finite")
    pos, neg = acts[positive], acts[~positive]
    auroc, low, high = bootstrap_auroc(pos, neg, rng=rng, n_bootstrap=n_bootstrap)
    threshold, _ = best_f1_threshold(acts, positive)
    f1, folds = cross_validated_f1(acts, positive, max_folds=max_folds, rng=rng)
    return FeatureStats(
        n_tasks=int(acts.size),
        n_positive=int(pos.size),
        n_negative=int(neg.size),
        auroc=auroc,
        auroc_ci_low=low,
        auroc_ci_high=high,
        fire_frac=_fires(acts),
        fire_frac_positive=_fires(pos),
        fire_frac_negative=_fires(neg),
        mean_act_positive=float(pos.mean()) if pos.size else np.nan,
        mean_act_negative=float(neg.mean()) if neg.size else np.nan,
        f1_cv=f1,
        f1_cv_folds=folds,
        f1_threshold=threshold,
        f1_all_positive=2 * pos.size / (acts.size + pos.size) if pos.size else np.nan,
    )


def _fires(values: np.ndarray) -> float:
    return float(np.mean(values > 0)) if values.size else np.nan


def pairwise_wins(pos: np.ndarray, neg: np.ndarray) -> np.ndarray:
    """``H[i, j] = 1`` if ``pos[i] > neg[j]``, ``0.5`` if equal, else 0: Float[ndarray, "n_pos n_neg"]."""
    pos = np.asarray(pos, dtype=np.float64)[:, None]
    neg = np.asarray(neg, dtype=np.float64)[None, :]
    return (pos > neg) + 0.5 * (pos == neg)


def auroc(pos: np.ndarray, neg: np.ndarray) -> float:
    """AUROC of positive vs negative scores; NaN when a class is empty."""
    if len(pos) == 0 or len(neg) == 0:
        return float("nan")
    return float(pairwise_wins(pos, neg).mean())


def bootstrap_auroc(
    pos: np.ndarray,
    neg: np.ndarray,
    *,
    rng: np.random.Generator,
    n_bootstrap: int = N_BOOTSTRAP,
    level: float = CI_LEVEL,
) -> tuple[float, float, float]:
    """AUROC and its percentile interval from a stratified bootstrap; NaNs when a class is empty.

    A resample draws ``n_pos`` positives and ``n_neg`` negatives with replacement; its AUROC is
    ``sum_ij c_i H_ij d_j / (n_pos n_neg)`` with ``c``, ``d`` the multiplicities of each task, so
    all resamples come from one comparison matrix ``H`` (:func:`pairwise_wins`).
    """
    n_pos, n_neg = len(pos), len(neg)
    if n_pos == 0 or n_neg == 0:
        return float("nan"), float("nan"), float("nan")
    wins = pairwise_wins(pos, neg)
    point = float(wins.mean())
    values = np.empty(n_bootstrap)
    for start in range(0, n_bootstrap, BOOTSTRAP_BLOCK):
        m = min(BOOTSTRAP_BLOCK, n_bootstrap - start)
        c, d = _resample_counts(rng, m, n_pos), _resample_counts(rng, m, n_neg)
        values[start : start + m] = np.einsum("bj,bj->b", c @ wins, d) / (n_pos * n_neg)
    tail = 100 * (1 - level) / 2
    low, high = np.percentile(values, [tail, 100 - tail])
    return point, float(low), float(high)


def _resample_counts(rng: np.random.Generator, m: int, n: int) -> np.ndarray:
    """Multiplicities (m, n) of each of n items in m resamples of n draws with replacement."""
    draws = rng.integers(0, n, size=(m, n)) + n * np.arange(m)[:, None]
    return np.bincount(draws.ravel(), minlength=m * n).reshape(m, n).astype(np.float64)


def best_f1_threshold(scores: np.ndarray, positive: np.ndarray) -> tuple[float, float]:
    """The threshold ``t`` maximizing F1 of the rule "positive when score > t", and that F1.

    Candidates cut between consecutive distinct scores (midpoints), plus ``-inf`` (everything
    positive). On ties the highest threshold wins. ``(nan, nan)`` without positive tasks.
    """
    scores = np.asarray(scores, dtype=np.float64)
    positive = np.asarray(positive, dtype=bool)
    n_pos = int(positive.sum())
    if n_pos == 0 or scores.size == 0:
        return float("nan"), float("nan")
    values, inverse = np.unique(scores, return_inverse=True)  # ascending
    values, inverse = values[::-1], values.size - 1 - inverse  # descending
    pos_at = np.bincount(inverse, weights=positive, minlength=values.size)
    all_at = np.bincount(inverse, minlength=values.size)
    tp, predicted = np.cumsum(pos_at), np.cumsum(all_at)  # predicting positive for scores >= values[j]
    f1 = 2 * tp / (predicted + n_pos)
    j = int(np.argmax(f1))  # first maximum: the highest threshold
    threshold = (values[j] + values[j + 1]) / 2 if j + 1 < values.size else -np.inf
    return float(threshold), float(f1[j])


def cross_validated_f1(
    scores: np.ndarray, positive: np.ndarray, *, max_folds: int = MAX_FOLDS, rng: np.random.Generator
) -> tuple[float, int]:
    """Pooled out-of-fold F1 (module docstring) and the fold count; ``(nan, 0)`` with < 2 tasks in a class."""
    scores = np.asarray(scores, dtype=np.float64)
    positive = np.asarray(positive, dtype=bool)
    k = min(max_folds, int(positive.sum()), int((~positive).sum()))
    if k < 2:
        return float("nan"), 0
    folds = stratified_folds(positive, k, rng)
    predicted = np.zeros(scores.size, dtype=bool)
    for fold in range(k):
        test = folds == fold
        threshold, _ = best_f1_threshold(scores[~test], positive[~test])
        predicted[test] = scores[test] > threshold
    tp = int(np.sum(predicted & positive))
    fp = int(np.sum(predicted & ~positive))
    fn = int(np.sum(~predicted & positive))
    return float(2 * tp / (2 * tp + fp + fn)), k


def stratified_folds(labels: np.ndarray, k: int, rng: np.random.Generator) -> np.ndarray:
    """Fold number of each task: each class shuffled, then dealt round-robin over ``k`` folds."""
    labels = np.asarray(labels, dtype=bool)
    folds = np.empty(labels.size, dtype=np.int64)
    for cls in (True, False):
        idx = rng.permutation(np.flatnonzero(labels == cls))
        folds[idx] = np.arange(idx.size) % k
    return folds
