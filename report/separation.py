"""How well a score separates passed from failed tasks: AUROC and a mean-difference probe.

Shapes: ``x`` Float[ndarray, "task d_model"] (one activation row per task), ``passed``
Bool[ndarray, "task"]. The positive class is *passed*, so an AUROC above 0.5 means passed tasks
score higher. AUROC and the folds are the shared statistics package's (``stats.auroc``,
``stats.folds``), as in the features stage. Every function returns ``None`` instead of a number
when a class has fewer than 2 tasks (a weak model may pass nothing), never raises for it.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import math

import numpy as np

from stats.auroc import auroc
from stats.folds import MAX_FOLDS, stratified_folds


@dataclass(frozen=True)
class CrossValidated:
    """Out-of-fold AUROC of the mean-difference probe; ``auroc`` is None when not computable.

    ``scores`` are the held-out decision values (task,), None when not computable.
    """

    auroc: float | None
    n_folds: int
    scores: np.ndarray | None = field(default=None, compare=False, repr=False)


def class_auroc(scores: np.ndarray, passed: np.ndarray) -> float | None:
    """AUROC of ``scores`` (task,) for the passed tasks (``stats.auroc.auroc``), or None with < 2 tasks in a class.

    Raises:
        ValueError: a score is NaN or infinite (its rank would be meaningless).
    """
    value = auroc(scores, passed)
    return None if math.isnan(value) else value


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

    Its AUROC (:func:`class_auroc` of the projections) is optimistic:
    with d_model dimensions and a few hundred tasks the direction partly fits noise, so even
    random activations score above 0.5. See :func:`cross_validated_auroc`.
    """
    passed = np.asarray(passed, dtype=bool)
    direction = mean_difference(x, passed)
    return None if direction is None else project(x, direction)


def cross_validated_auroc(
    x: np.ndarray, passed: np.ndarray, *, max_folds: int = MAX_FOLDS, seed: int = 0
) -> CrossValidated:
    """Stratified k-fold AUROC of the mean-difference probe (a nearest-centroid classifier).

    Each fold's direction and midpoint come from the other folds only. Held-out scores are
    decision values ``(x - midpoint) . unit(direction)``, so folds share one scale and are
    pooled into one AUROC. Folds: ``stats.folds.stratified_folds`` (``k = min(max_folds,
    n_passed, n_failed)``, so every fold holds both classes); with fewer than two tasks in a
    class, ``auroc`` is None.

    Args:
        x: activations (task, d_model).
        passed: which tasks passed (task,).
        max_folds: the most folds to use.
        seed: seed of the folds (the result is deterministic).

    Returns:
        The pooled out-of-fold AUROC, the number of folds used (0 when not computable) and
        the held-out scores.
    """
    passed = np.asarray(passed, dtype=bool)
    folds = stratified_folds(passed, max_folds=max_folds, seed=seed)
    if not folds:
        return CrossValidated(auroc=None, n_folds=0)
    scores = np.empty(x.shape[0])
    for train, test in folds:
        train_x, train_passed = x[train], passed[train]
        mu_pos = train_x[train_passed].mean(axis=0)
        mu_neg = train_x[~train_passed].mean(axis=0)
        scores[test] = project(x[test] - (mu_pos + mu_neg) / 2.0, mu_pos - mu_neg)
    return CrossValidated(auroc=class_auroc(scores, passed), n_folds=len(folds), scores=scores)
