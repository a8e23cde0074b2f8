"""Cross-validated logistic-regression probe: out-of-fold AUROC, its interval, its p-value.

The probe is ``Pipeline(StandardScaler, LogisticRegression)`` (L2 with ``C`` = 1, scikit-learn's
default strength, lbfgs; :func:`probe_pipeline`), fitted on the training folds of a seeded
``StratifiedKFold`` with ``k = min(5, smaller class size)`` folds (:mod:`stats.folds`); the held-out decision values
of all folds are pooled into one AUROC. The interval is the stratified bootstrap of that pooled
AUROC over tasks (:mod:`stats.bootstrap`), the folds' fits held fixed.

Row span (an exact shortcut). With more dimensions than training tasks (2304 against ~310), an
L2-penalized weight vector has no component outside the span of the training rows (one would
change no training prediction and only add penalty). Writing the weights in that span turns the
fit into one on ``Z = U sqrt(L)`` (from the standardized training Gram matrix ``K = U L U^T``):
n_train columns instead of d, the same optimum, the same held-out decision values
(``A_test A_train^T U / sqrt(L)``), several times faster to fit.

p-value (a cheaper valid test than refitting under permuted labels). A label-permutation test
of the pooled out-of-fold AUROC must refit every fold for each permutation: on 388 tasks x 2304
dimensions one fit (in the row span) took 20-90 ms on these 2-core machines (lbfgs, 100-300
iterations on realistically anisotropic vectors), so even 100 permutations (5 x 101 fits) cost
~30 s per probe and ~14 minutes for the 28 residual probes of a Gemma-2-2B run. Instead each fold is tested on its own,
exactly, without refitting:

- Under the null hypothesis (labels independent of the vectors, tasks exchangeable), given the
  folds and the labels outside fold j, the labels inside fold j are equally likely in every
  arrangement with that fold's class counts (stratified folds fix only the counts). The fold's
  model was fitted on the other folds only, so its held-out scores are fixed given those, and
  the one-sided permutation p-value ``p_j`` of the fold's AUROC (:mod:`stats.permutation`,
  10,000 permutations) is valid.
- The ``k`` fold p-values depend on each other (each fold trains the others' models), so they
  are combined by Bonferroni, valid under any dependence: ``p = min(1, k * min_j p_j)``.

It loses power to a pooled test for weak signals (each fold holds a fifth of the tasks); its
smallest value is ``k / 10,001``, below what 100 refitted permutations could show (1/101).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler
from threadpoolctl import threadpool_limits

from stats.bootstrap import CI_LEVEL, N_BOOTSTRAP, Seed, bootstrap_auroc
from stats.folds import MAX_FOLDS, stratified_folds
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
    """Held-out decision values of the probe fitted on ``train`` (row span when d > n_train).

    Callers hold BLAS to one thread: these matrices are small (a few hundred rows), and with
    two threads on a busy 2-core machine LAPACK's eigensolver was measured 40-80x slower
    (1.2 s against 15-40 ms for 310 x 310) while the threads wait on each other.
    """
    scaler = StandardScaler().fit(x[train])
    a_train = scaler.transform(x[train])
    a_test = scaler.transform(x[test])
    if a_train.shape[1] > a_train.shape[0]:
        # Row span (module docstring): K = U L U^T, Z_train = U sqrt(L), Z_test = A_test A_train^T U / sqrt(L).
        gram = a_train @ a_train.T
        eigval, eigvec = np.linalg.eigh(gram)
        keep = eigval > eigval.max() * gram.shape[0] * np.finfo(np.float64).eps  # numerical rank
        eigval, eigvec = eigval[keep], eigvec[:, keep]
        root = np.sqrt(eigval)
        a_train, a_test = eigvec * root, (a_test @ a_train.T) @ eigvec / root
    return logistic(c).fit(a_train, y[train]).decision_function(a_test)


def _splits(y: np.ndarray, max_folds: int, seed: Seed) -> list[tuple[np.ndarray, np.ndarray]]:
    """Stratified folds (:mod:`stats.folds`), from stream ``(*seed, 0)`` (the per-fold tests use
    ``(*seed, 1, fold)``, the bootstrap ``(*seed, 2)``)."""
    return stratified_folds(y, max_folds=max_folds, seed=(*_entropy(seed), 0))


def out_of_fold_scores(
    x: np.ndarray, positive: np.ndarray, *, seed: Seed = 0, max_folds: int = MAX_FOLDS, c: float = C
) -> tuple[np.ndarray, int]:
    """Held-out decision values of the probe on every task, and the fold count.

    Args:
        x: Float[ndarray, "task d"], the probe's inputs (raw vectors or SAE activations).
        positive: Bool[ndarray, "task"].
        seed, max_folds, c: as :func:`probe` (the same seed gives the same folds).

    Returns:
        Float[ndarray, "task"] scores; all NaN and 0 folds with fewer than ``MIN_PER_CLASS``
        tasks in a class or no input columns.
    """
    x, y = _inputs(x, positive)
    folds = _splits(y, max_folds, seed)
    if not folds or x.shape[1] == 0:
        return np.full(y.size, np.nan), 0
    scores = np.empty(y.size)
    with threadpool_limits(limits=1, user_api="blas"):  # see _fold_scores
        for train, test in folds:
            scores[test] = _fold_scores(x, y, train, test, c)
    return scores, len(folds)


def probe(
    x: np.ndarray,
    positive: np.ndarray,
    *,
    seed: Seed = 0,
    max_folds: int = MAX_FOLDS,
    c: float = C,
    n_bootstrap: int = N_BOOTSTRAP,
    level: float = CI_LEVEL,
    n_permutations: int = N_PERMUTATIONS,
) -> ProbeResult:
    """Out-of-fold AUROC of the probe, its bootstrap interval and its p-value (module docstring).

    Args:
        x: Float[ndarray, "task d"], the probe's inputs.
        positive: Bool[ndarray, "task"], the class to detect (e.g. passed tasks).
        seed: seeds the folds, the bootstrap and the per-fold permutations.
        max_folds: the most folds (fewer when the smaller class is smaller).
        c: inverse L2 strength.
        n_bootstrap, level: the interval.
        n_permutations: label permutations of each fold's test.

    Returns:
        NaNs with fewer than ``MIN_PER_CLASS`` tasks in a class, or no input columns.
    """
    x, y = _inputs(x, positive)
    folds = _splits(y, max_folds, seed)
    k = len(folds)
    if k == 0 or x.shape[1] == 0:
        nan = float("nan")
        return ProbeResult(nan, nan, nan, nan, 0)
    scores = np.empty(y.size)
    fold_p = []
    with threadpool_limits(limits=1, user_api="blas"):  # see _fold_scores
        for fold, (train, test) in enumerate(folds):
            scores[test] = _fold_scores(x, y, train, test, c)
            # Stratified folds hold at least one task of each class; the test is valid down to one.
            fold_seed = (*_entropy(seed), 1, fold)
            fold_p.append(
                permutation_p_value(
                    scores[test], y[test], n_permutations=n_permutations, seed=fold_seed, min_per_class=1
                )
            )
    interval = bootstrap_auroc(scores, y, n_resamples=n_bootstrap, level=level, seed=(*_entropy(seed), 2))
    p_value = min(1.0, k * min(fold_p))  # Bonferroni over the folds
    return ProbeResult(float(roc_auc_score(y, scores)), interval.low, interval.high, p_value, k)


def _entropy(seed: Seed) -> tuple[int, ...]:
    """``seed`` as a tuple, to derive the sub-seeds ``(*seed, i)`` of independent streams."""
    return (seed,) if isinstance(seed, (int, np.integer)) else tuple(seed)


def _inputs(x: np.ndarray, positive: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    x = np.asarray(x, dtype=np.float64)
    if x.ndim == 1:
        x = x[:, None]
    y = np.asarray(positive, dtype=bool).ravel()
    if x.ndim != 2 or x.shape[0] != y.size:
        raise ValueError(f"probe inputs of shape {x.shape} for {y.size} labels")
    if not np.all(np.isfinite(x)):
        raise ValueError("probe inputs must be finite")
    return x, y
