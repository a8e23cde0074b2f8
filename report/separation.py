"""How well a score separates passed from failed tasks: rank AUROC and a mean-difference probe.

Pure numpy. Shapes: ``x`` Float[ndarray, "task d_model"] (one activation row per task),
``passed`` Bool[ndarray, "task"]. The positive class is *passed*, so an AUROC above 0.5 means
passed tasks score higher. Every function returns ``None`` instead of a number when one class
is empty (a weak model may pass nothing), never raises for it.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

DEFAULT_MAX_FOLDS = 5


@dataclass(frozen=True)
class CrossValidated:
    """Out-of-fold AUROC of the mean-difference probe; ``auroc`` is None when not computable.

    ``scores`` are the held-out decision values (task,), None when not computable.
    """

    auroc: float | None
    n_folds: int
    scores: np.ndarray | None = field(default=None, compare=False, repr=False)


def rank_auroc(pos: np.ndarray, neg: np.ndarray) -> float | None:
    """AUROC = P(score of a positive > score of a negative), ties counting one half.

    Computed from the Mann-Whitney U statistic with average ranks for ties:
    ``U = R_pos - n_pos (n_pos + 1) / 2`` and ``AUROC = U / (n_pos n_neg)``.

    Args:
        pos: scores of the positive class (passed tasks).
        neg: scores of the negative class (failed tasks).

    Returns:
        The AUROC in [0, 1], or None when either class is empty.

    Raises:
        ValueError: a score is NaN or infinite (its rank would be meaningless).
    """
    pos = np.asarray(pos, dtype=np.float64).ravel()
    neg = np.asarray(neg, dtype=np.float64).ravel()
    if pos.size == 0 or neg.size == 0:
        return None
    scores = np.concatenate([pos, neg])
    if not np.all(np.isfinite(scores)):
        raise ValueError("rank_auroc: scores must be finite")
    ranks = average_ranks(scores)
    u = ranks[: pos.size].sum() - pos.size * (pos.size + 1) / 2.0
    return float(u / (pos.size * neg.size))


def average_ranks(values: np.ndarray) -> np.ndarray:
    """1-based ranks of ``values``; tied values share the mean of the ranks they span."""
    _, inverse, counts = np.unique(values, return_inverse=True, return_counts=True)
    last_rank = np.cumsum(counts)
    mean_rank = last_rank - (counts - 1) / 2.0
    return mean_rank[inverse.ravel()]


def mean_difference(x: np.ndarray, passed: np.ndarray) -> np.ndarray | None:
    """``mean(x[passed]) - mean(x[~passed])`` (d_model,), or None when a class is empty."""
    passed = np.asarray(passed, dtype=bool)
    if not passed.any() or passed.all():
        return None
    return x[passed].mean(axis=0) - x[~passed].mean(axis=0)


def project(x: np.ndarray, direction: np.ndarray) -> np.ndarray:
    """Scalar projection of each row of ``x`` on the unit vector along ``direction`` (task,).

    A zero direction (identical class means) projects everything to 0.
    """
    norm = float(np.linalg.norm(direction))
    if norm == 0.0:
        return np.zeros(x.shape[0])
    return x @ (direction / norm)


def in_sample_projection(x: np.ndarray, passed: np.ndarray) -> np.ndarray | None:
    """Projection of each task on the mean difference fitted on the same tasks (task,), or None.

    Its AUROC (``rank_auroc`` of the passed against the failed projections) is optimistic:
    with d_model dimensions and a few hundred tasks the direction partly fits noise, so even
    random activations score above 0.5. See :func:`cross_validated_auroc`.
    """
    passed = np.asarray(passed, dtype=bool)
    direction = mean_difference(x, passed)
    return None if direction is None else project(x, direction)


def cross_validated_auroc(
    x: np.ndarray, passed: np.ndarray, *, max_folds: int = DEFAULT_MAX_FOLDS, seed: int = 0
) -> CrossValidated:
    """Stratified k-fold AUROC of the mean-difference probe (a nearest-centroid classifier).

    Each fold's direction and midpoint come from the other folds only. Held-out scores are
    decision values ``(x - midpoint) . unit(direction)``, so folds share one scale and are
    pooled into one AUROC. ``k = min(max_folds, n_passed, n_failed)`` so that every fold holds
    both classes; with fewer than two tasks in a class, ``auroc`` is None.

    Args:
        x: activations (task, d_model).
        passed: which tasks passed (task,).
        max_folds: the most folds to use.
        seed: seed of the shuffle that deals tasks to folds (the result is deterministic).

    Returns:
        The pooled out-of-fold AUROC, the number of folds used (0 when not computable) and
        the held-out scores.
    """
    passed = np.asarray(passed, dtype=bool)
    n_pos, n_neg = int(passed.sum()), int((~passed).sum())
    k = min(max_folds, n_pos, n_neg)
    if k < 2:
        return CrossValidated(auroc=None, n_folds=0)
    folds = _stratified_folds(passed, k, seed)
    scores = np.empty(x.shape[0])
    for fold in range(k):
        test = folds == fold
        train_x, train_passed = x[~test], passed[~test]
        mu_pos = train_x[train_passed].mean(axis=0)
        mu_neg = train_x[~train_passed].mean(axis=0)
        scores[test] = project(x[test] - (mu_pos + mu_neg) / 2.0, mu_pos - mu_neg)
    return CrossValidated(auroc=rank_auroc(scores[passed], scores[~passed]), n_folds=k, scores=scores)


def _stratified_folds(passed: np.ndarray, k: int, seed: int) -> np.ndarray:
    # Deal each class round-robin over the folds after a seeded shuffle: every fold gets
    # floor or ceil of n_class / k tasks of each class.
    rng = np.random.default_rng(seed)
    folds = np.empty(passed.size, dtype=np.int64)
    for cls in (True, False):
        idx = rng.permutation(np.flatnonzero(passed == cls))
        folds[idx] = np.arange(idx.size) % k
    return folds
