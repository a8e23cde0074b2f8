"""The statistics of a run's feature columns (features/table.py): AUROC against scikit-learn, its interval,
p-values, firing fractions; NaN, never an error, where a class is too small."""

from __future__ import annotations

import math

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from features.table import score_columns


def synthetic_columns(n=200, n_pos=60, k=6, shift=4.0, seed=0):
    """``k`` activation columns (ReLU of noise, many exact zeros: ties), the first shifted up on the positives."""
    g = np.random.default_rng(seed)
    positive = np.zeros(n, dtype=bool)
    positive[g.choice(n, n_pos, replace=False)] = True
    acts = np.maximum(g.normal(size=(n, k)), 0.0)
    acts[positive, 0] += shift
    return acts, positive


def test_auroc_equals_sklearn_roc_auc_score_ties_included():
    acts, positive = synthetic_columns(k=8, shift=0.5)
    acts = np.round(acts, 1)  # more ties
    labels = np.column_stack([positive if j % 2 else ~positive for j in range(8)])  # both orientations
    stats = score_columns(acts, labels, seed=0)
    # Midrank sums are exact (multiples of 1/2); only the final division rounds (~1e-16): 1e-12 is ample.
    for j in range(8):
        assert stats["auroc"][j] == pytest.approx(roc_auc_score(labels[:, j], acts[:, j]), abs=1e-12)


def test_planted_column_separates_with_an_interval_above_one_half_and_a_small_p_value():
    acts, positive = synthetic_columns()
    stats = score_columns(acts, np.column_stack([positive] * acts.shape[1]), seed=(0, 1))
    assert stats["auroc"][0] > 0.95 and stats["auroc_ci_low"][0] > 0.5
    assert stats["auroc_ci_low"][0] <= stats["auroc"][0] <= stats["auroc_ci_high"][0]
    assert stats["p_value"][0] == pytest.approx(1 / 10_001)  # no permutation reaches it
    assert stats["f1_cv"][0] > 0.8 and stats["f1_cv_folds"][0] == 5
    assert stats["fire_frac_positive"][0] > stats["fire_frac_negative"][0]
    assert np.all(np.abs(stats["auroc"][1:] - 0.5) < 0.15) and np.all(stats["p_value"][1:] > 0.01)


def test_firing_and_means_are_plain_class_averages():
    acts, positive = synthetic_columns(n=50, n_pos=20, k=3)
    stats = score_columns(acts, np.column_stack([positive] * 3), seed=0)
    np.testing.assert_allclose(stats["fire_frac"], (acts > 0).mean(axis=0))
    np.testing.assert_allclose(stats["fire_frac_positive"], (acts[positive] > 0).mean(axis=0))
    np.testing.assert_allclose(stats["mean_act_negative"], acts[~positive].mean(axis=0))
    np.testing.assert_allclose(stats["f1_all_positive"], 2 * 20 / (50 + 20))


def test_a_column_does_not_depend_on_which_others_are_scored():
    acts, positive = synthetic_columns(k=5, shift=1.0)
    labels = np.column_stack([positive] * 5)
    every = score_columns(acts, labels, seed=3)
    alone = score_columns(acts[:, [2]], labels[:, [2]], seed=3)
    for name, values in alone.items():
        assert values[0] == pytest.approx(every[name][2], nan_ok=True), name


def test_seeded():
    acts, positive = synthetic_columns(shift=0.5)
    labels = np.column_stack([positive] * acts.shape[1])
    first, again, other = (score_columns(acts, labels, seed=s) for s in (7, 7, 8))
    np.testing.assert_array_equal(first["auroc_ci_low"], again["auroc_ci_low"])
    np.testing.assert_array_equal(first["p_value"], again["p_value"])
    assert not np.array_equal(first["auroc_ci_low"], other["auroc_ci_low"])
    np.testing.assert_array_equal(first["auroc"], other["auroc"])


@pytest.mark.parametrize("n_pos", [0, 1, 30])
def test_a_class_of_fewer_than_two_tasks_gives_nan_not_an_error(n_pos):
    positive = np.arange(30) < n_pos
    acts = np.linspace(0, 1, 30)[:, None]
    stats = score_columns(acts, positive[:, None], seed=0)
    for name in ("auroc", "auroc_ci_low", "auroc_ci_high", "p_value", "f1_cv"):
        assert math.isnan(stats[name][0]), name
    assert stats["f1_cv_folds"][0] == 0
    assert stats["fire_frac"][0] == pytest.approx(29 / 30)
    if n_pos == 0:
        assert math.isnan(stats["fire_frac_positive"][0]) and math.isnan(stats["f1_all_positive"][0])
