"""Cross-validated logistic-regression probe: out-of-fold AUROC, its interval, its p-value.

The probe is ``Pipeline(StandardScaler, LogisticRegression)`` (L2, ``C`` = 1, lbfgs;
:func:`probe_pipeline`) fitted on the training folds of :func:`stats.folds.stratified_folds`; the
held-out decision values of all folds are pooled into one AUROC, with a stratified bootstrap
interval over tasks (the folds' fits held fixed).

Row span: with more dimensions than training tasks (2304 against ~310) the L2 optimum lies in the
span of the training rows, so the fit runs on ``Z = U sqrt(L)`` of the standardized training Gram
matrix ``K = U L U^T`` (n_train columns instead of d): the same optimum and held-out decision
values (``A_test A_train^T U / sqrt(L)``), several times faster.

p-value: refitting every fold per label permutation costs ~30 s per probe for only 100
permutations. Instead each fold is tested alone: under the null its model (fitted on the other
folds) fixes its held-out scores, and its labels are exchangeable given the fold's class counts,
so the fold's one-sided permutation p-value ``p_j`` (10,000 permutations) is exact. The dependent
fold p-values are combined by Bonferroni, ``p = min(1, k * min_j p_j)`` (smallest ``k / 10,001``).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler
from threadpoolctl import threadpool_limits

from stats.bootstrap import CI_LEVEL, N_BOOTSTRAP, bootstrap_auroc
from stats.folds import MAX_FOLDS, stratified_folds
from stats.labels import Seed
from stats.permutation import N_PERMUTATIONS, permutation_p_value

C = 1.0
MAX_ITER = 1000  # lbfgs; scikit-learn's 100 stops short on anisotropic vectors (measured 100-300)


@dataclass(frozen=True)
class ProbeResult:
    """One probe's scores (NaN, and 0 folds, with fewer than ``MIN_PER_CLASS`` tasks in a class)."""

    auroc: float
    auroc_ci_low: float
    auroc_ci_high: float
    p_value: float
    n_folds: int


def logistic(c: float = C) -> LogisticRegression:
    """The probe's classifier: L2-penalized logistic regression (lbfgs, unpenalized intercept)."""
    return LogisticRegression(C=c, max_iter=MAX_ITER)


def probe_pipeline(c: float = C) -> Pipeline:
    """The probe as one scikit-learn estimator; :func:`probe` fits exactly this, fold by fold."""
    return Pipeline([("scale", StandardScaler()), ("logreg", logistic(c))])


def _fold_scores(x: np.ndarray, y: np.ndarray, train: np.ndarray, test: np.ndarray, c: float) -> np.ndarray:
    """Held-out decision values of the probe fitted on ``train`` (in the row span when d > n_train)."""
    scaler = StandardScaler().fit(x[train])
    a_train = scaler.transform(x[train])
    a_test = scaler.transform(x[test])
    if a_train.shape[1] > a_train.shape[0]:
        gram = a_train @ a_train.T
        eigval, eigvec = np.linalg.eigh(gram)
        keep = eigval > eigval.max() * gram.shape[0] * np.finfo(np.float64).eps  # numerical rank
        eigval, eigvec = eigval[keep], eigvec[:, keep]
        root = np.sqrt(eigval)
        a_train, a_test = eigvec * root, (a_test @ a_train.T) @ eigvec / root
    return logistic(c).fit(a_train, y[train]).decision_function(a_test)


def _splits(y: np.ndarray, max_folds: int, seed: Seed) -> list[tuple[np.ndarray, np.ndarray]]:
    """The folds, from stream ``(*seed, 0)`` (fold tests use ``(*seed, 1, fold)``, the bootstrap ``(*seed, 2)``)."""
    return stratified_folds(y, max_folds=max_folds, seed=(*_entropy(seed), 0))


def out_of_fold_scores(x: np.ndarray, positive: np.ndarray, *, seed: Seed = 0, max_folds: int = MAX_FOLDS,
                       c: float = C) -> tuple[np.ndarray, int]:
    """Held-out decision values of the probe on every task (Float[ndarray, "task"]) and the fold count.

    ``x`` is Float[ndarray, "task d"]. All NaN and 0 folds with a class too small or no columns.
    """
    x = np.asarray(x, dtype=np.float64)
    if x.ndim == 1:
        x = x[:, None]
    y = np.asarray(positive, dtype=bool).ravel()
    if x.ndim != 2 or x.shape[0] != y.size:
        raise ValueError(f"probe inputs of shape {x.shape} for {y.size} labels")
    if not np.all(np.isfinite(x)):
        raise ValueError("probe inputs must be finite")
    folds = _splits(y, max_folds, seed)
    if not folds or x.shape[1] == 0:
        return np.full(y.size, np.nan), 0
    scores = np.empty(y.size)
    # One BLAS thread: on these small matrices two threads on a busy 2-core machine made LAPACK's
    # eigensolver 40-80x slower (1.2 s against 15-40 ms for 310 x 310).
    with threadpool_limits(limits=1, user_api="blas"):
        for train, test in folds:
            scores[test] = _fold_scores(x, y, train, test, c)
    return scores, len(folds)


def probe(x: np.ndarray, positive: np.ndarray, *, seed: Seed = 0, max_folds: int = MAX_FOLDS, c: float = C,
          n_bootstrap: int = N_BOOTSTRAP, level: float = CI_LEVEL,
          n_permutations: int = N_PERMUTATIONS) -> ProbeResult:
    """Out-of-fold AUROC of the probe on ``x`` (task, d) for ``positive``, its bootstrap interval and p-value.

    ``seed`` seeds the folds, the bootstrap and the per-fold permutations; ``c`` is the inverse L2
    strength. NaNs with a class too small or no input columns.
    """
    scores, k = out_of_fold_scores(x, positive, seed=seed, max_folds=max_folds, c=c)
    if k == 0:
        nan = float("nan")
        return ProbeResult(nan, nan, nan, nan, 0)
    y = np.asarray(positive, dtype=bool).ravel()
    # Stratified folds hold at least one task of each class; the test is valid down to one.
    fold_p = [permutation_p_value(scores[test], y[test], n_permutations=n_permutations,
                                  seed=(*_entropy(seed), 1, fold), min_per_class=1)
              for fold, (_, test) in enumerate(_splits(y, max_folds, seed))]
    interval = bootstrap_auroc(scores, y, n_resamples=n_bootstrap, level=level, seed=(*_entropy(seed), 2))
    p_value = min(1.0, k * min(fold_p))  # Bonferroni over the folds
    return ProbeResult(float(roc_auc_score(y, scores)), interval.low, interval.high, p_value, k)


def _entropy(seed: Seed) -> tuple[int, ...]:
    """``seed`` as a tuple, to derive the sub-seeds ``(*seed, i)`` of independent streams."""
    return (seed,) if isinstance(seed, (int, np.integer)) else tuple(seed)
