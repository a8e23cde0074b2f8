"""The statistics of a run's listed features, from their activations (every one from ``stats``).

Shapes: ``acts`` Float[ndarray, "task feature"] (one column per listed feature x site, all on the
same tasks), ``positive`` Bool[ndarray, "task feature"] (each feature's own class: passed tasks
for a "correct" feature, failed tasks for an "incorrect" one). Every statistic is NaN where a
class has fewer than 2 tasks (``stats.labels.MIN_PER_CLASS``), never an exception.

- AUROC (``roc_auc_score``'s definition) and its 95 % interval: stratified percentile bootstrap,
  tasks resampled within each class (:func:`stats.bootstrap.bootstrap_auroc_columns`);
- p-value: one-sided label permutations, at least 10,000 (:mod:`stats.permutation`); the
  q-values (Benjamini-Hochberg over every scored feature x site of the run) come after;
- F1: the threshold maximizing F1 on all tasks, and the cross-validated F1 (threshold fitted on
  the other folds only, :mod:`stats.f1`); firing fractions and mean activations per class.
"""

from __future__ import annotations

import numpy as np

from stats.bootstrap import N_BOOTSTRAP, bootstrap_auroc_columns
from stats.f1 import best_f1_threshold, cross_validated_f1
from stats.folds import MAX_FOLDS
from stats.labels import Seed
from stats.permutation import N_PERMUTATIONS, permutation_p_values

# Seeds: the bootstrap (*seed, 0), the permutations (*seed, 1), the F1 folds (*seed, 2); each
# is shared by all columns of a labelling, so a column's numbers do not depend on the others.
BOOTSTRAP_STREAM, PERMUTATION_STREAM, FOLD_STREAM = 0, 1, 2


def score_columns(acts: np.ndarray, positive: np.ndarray, *, seed: Seed, n_bootstrap: int = N_BOOTSTRAP,
                  n_permutations: int = N_PERMUTATIONS, max_folds: int = MAX_FOLDS) -> dict[str, np.ndarray]:
    """Every statistic of every column (module docstring): ``{name: Float[ndarray, "feature"]}``.

    Names: ``auroc``, ``auroc_ci_low``, ``auroc_ci_high``, ``p_value``, ``fire_frac``,
    ``fire_frac_positive``, ``fire_frac_negative``, ``mean_act_positive``, ``mean_act_negative``,
    ``f1_cv``, ``f1_cv_folds``, ``f1_threshold``, ``f1_all_positive``.
    """
    acts = np.asarray(acts, dtype=np.float64)
    positive = np.asarray(positive, dtype=bool)
    base = (seed,) if isinstance(seed, (int, np.integer)) else tuple(seed)
    auroc, low, high = bootstrap_auroc_columns(acts, positive, n_resamples=n_bootstrap, seed=(*base, BOOTSTRAP_STREAM))
    p = permutation_p_values(acts, positive, n_permutations=n_permutations, seed=(*base, PERMUTATION_STREAM))
    out = {"auroc": auroc, "auroc_ci_low": low, "auroc_ci_high": high, "p_value": p, **_firing(acts, positive)}
    out |= _f1(acts, positive, seed=(*base, FOLD_STREAM), max_folds=max_folds)
    return out


def _firing(acts: np.ndarray, positive: np.ndarray) -> dict[str, np.ndarray]:
    """Share of tasks with activation > 0, overall and per class, and mean activation per class."""
    fires = acts > 0
    n_pos, n_neg = positive.sum(axis=0), (~positive).sum(axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):  # an empty class gives NaN, as documented
        return {
            "fire_frac": fires.mean(axis=0) if acts.shape[0] else np.full(acts.shape[1], np.nan),
            "fire_frac_positive": (fires & positive).sum(axis=0) / n_pos,
            "fire_frac_negative": (fires & ~positive).sum(axis=0) / n_neg,
            "mean_act_positive": np.where(positive, acts, 0).sum(axis=0) / n_pos,
            "mean_act_negative": np.where(~positive, acts, 0).sum(axis=0) / n_neg,
        }


def _f1(acts: np.ndarray, positive: np.ndarray, *, seed: Seed, max_folds: int) -> dict[str, np.ndarray]:
    """The F1 columns: threshold on all tasks, cross-validated F1 and its folds, the all-positive baseline."""
    k = acts.shape[1]
    out = {name: np.full(k, np.nan) for name in ("f1_cv", "f1_threshold", "f1_all_positive")}
    out["f1_cv_folds"] = np.zeros(k, dtype=np.int64)
    for j in range(k):
        y = positive[:, j]
        out["f1_threshold"][j] = best_f1_threshold(acts[:, j], y)[0]
        out["f1_cv"][j], out["f1_cv_folds"][j] = cross_validated_f1(acts[:, j], y, max_folds=max_folds, seed=seed)
        n_pos = int(y.sum())
        out["f1_all_positive"][j] = 2 * n_pos / (y.size + n_pos) if n_pos else np.nan
    return out
