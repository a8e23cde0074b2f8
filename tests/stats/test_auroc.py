"""AUROC against scikit-learn's ``roc_auc_score`` (not against another copy of ours)."""

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from stats.auroc import auroc, auroc_columns, weighted_auroc

# Differences from roc_auc_score measured at <= 2.2e-16 over 20 seeds of these data (float64
# rounding of the same sums in another order); the bound leaves a >1000x margin.
TOL = 1e-12


def _data(seed: int, n: int = 60, features: int = 25):
    rng = np.random.default_rng(seed)
    y = rng.random(n) < 0.4
    scores = rng.standard_normal((n, features)) + 0.7 * y[:, None] * rng.random(features)
    scores[:, ::3] = np.round(scores[:, ::3])  # ties between and within classes
    scores[:, 1] = 0.0  # a latent that never fires
    return scores, y


@pytest.mark.parametrize("seed", range(3))
def test_auroc_is_roc_auc_score(seed):
    scores, y = _data(seed)
    for j in range(scores.shape[1]):
        assert auroc(scores[:, j], y) == roc_auc_score(y, scores[:, j])
        assert auroc(scores[:, j], ~y) == roc_auc_score(~y, scores[:, j])


@pytest.mark.parametrize("seed", range(3))
def test_columns_match_roc_auc_score_with_shared_and_per_column_labels(seed):
    scores, y = _data(seed)
    reference = np.array([roc_auc_score(y, scores[:, j]) for j in range(scores.shape[1])])
    np.testing.assert_allclose(auroc_columns(scores, y), reference, rtol=0, atol=TOL)
    flipped = np.column_stack([y if j % 2 else ~y for j in range(scores.shape[1])])
    expected = np.where(np.arange(scores.shape[1]) % 2, reference, 1 - reference)
    np.testing.assert_allclose(auroc_columns(scores, flipped), expected, rtol=0, atol=TOL)
    assert auroc_columns(scores[:, 1], y)[0] == 0.5  # never fires: every pair tied


@pytest.mark.parametrize("seed", range(3))
def test_weighted_auroc_is_the_auroc_of_the_resample(seed):
    scores, y = _data(seed)
    rng = np.random.default_rng(100 + seed)
    weights = rng.integers(0, 4, size=(20, y.size)).astype(float)
    for j in (0, 1, 2):
        got = weighted_auroc(scores[:, j], y, weights)
        for b, w in enumerate(weights):
            idx = np.repeat(np.arange(y.size), w.astype(int))
            assert abs(got[b] - roc_auc_score(y[idx], scores[idx, j])) <= TOL


def test_weighted_auroc_with_unit_weights_is_the_auroc():
    scores, y = _data(7)
    got = weighted_auroc(scores[:, 0], y, np.ones((1, y.size)))
    assert abs(got[0] - roc_auc_score(y, scores[:, 0])) <= TOL


def test_weighted_auroc_is_nan_for_a_resample_without_a_class():
    y = np.array([True, True, False, False])
    weights = np.array([[1.0, 1.0, 1.0, 1.0], [0.0, 0.0, 2.0, 2.0]])
    got = weighted_auroc(np.array([3.0, 2.0, 1.0, 0.0]), y, weights)
    assert got[0] == 1.0 and np.isnan(got[1])
