"""The report's AUROC (the shared stats.auroc) against hand-computed values, a brute-force definition and
scikit-learn; the mean-difference probe's honesty on the shared folds."""

from __future__ import annotations

import numpy as np
import pytest

from sklearn.metrics import roc_auc_score

from report.separation import class_auroc, cross_validated_auroc, in_sample_projection, mean_difference, project


def rank_auroc(pos, neg):
    """The report's AUROC of two classes of scores (passed first)."""
    pos, neg = np.asarray(pos, dtype=float), np.asarray(neg, dtype=float)
    return class_auroc(np.concatenate([pos, neg]), np.arange(pos.size + neg.size) < pos.size)


def in_sample_auroc(x: np.ndarray, passed: np.ndarray) -> float | None:
    """The report's in-sample projection AUROC (report/stats.py computes it this way)."""
    projections = in_sample_projection(x, passed)
    return None if projections is None else rank_auroc(projections[passed], projections[~passed])


def brute_force_auroc(pos: np.ndarray, neg: np.ndarray) -> float:
    """P(pos > neg) + 0.5 P(pos == neg) over every pair: the definition, O(n^2)."""
    diff = pos[:, None] - neg[None, :]
    return float(((diff > 0).sum() + 0.5 * (diff == 0).sum()) / diff.size)


@pytest.mark.parametrize(
    ("pos", "neg", "expected"),
    [
        ([3.0, 4.0], [1.0, 2.0], 1.0),  # perfect separation
        ([1.0, 2.0], [3.0, 4.0], 0.0),  # perfectly reversed
        ([5.0, 5.0], [5.0, 5.0, 5.0], 0.5),  # all tied
        ([1.0, 2.0, 3.0], [2.0, 2.0], 0.5),  # (0 + 0.5 + 1) x 2 over 6 pairs
        ([0.8, 0.4], [0.5, 0.1, 0.4], 0.75),  # 3 + (0 + 1 + 0.5) over 6 pairs
    ],
)
def test_rank_auroc_known_values(pos, neg, expected):
    assert rank_auroc(np.array(pos), np.array(neg)) == pytest.approx(expected)


def test_auroc_matches_the_pairwise_definition_and_sklearn_with_many_ties():
    rng = np.random.default_rng(1)
    for _ in range(20):
        pos = rng.integers(0, 6, size=rng.integers(2, 30)).astype(float)  # few values: many ties
        neg = rng.integers(0, 6, size=rng.integers(2, 30)).astype(float)
        assert rank_auroc(pos, neg) == pytest.approx(brute_force_auroc(pos, neg))
        labels = np.arange(pos.size + neg.size) < pos.size
        assert rank_auroc(pos, neg) == pytest.approx(roc_auc_score(labels, np.concatenate([pos, neg])), abs=1e-12)


@pytest.mark.parametrize(("pos", "neg"), [([], [1.0, 2.0]), ([1.0], [2.0, 3.0]), ([1.0, 2.0], [3.0]), ([], [])])
def test_auroc_is_none_with_fewer_than_two_tasks_in_a_class(pos, neg):
    assert rank_auroc(np.array(pos), np.array(neg)) is None


def test_auroc_rejects_nan():
    with pytest.raises(ValueError, match="finite"):
        rank_auroc(np.array([1.0, np.nan]), np.array([0.0, 2.0]))


def test_mean_difference_and_projection():
    x = np.array([[2.0, 0.0], [4.0, 0.0], [0.0, 1.0], [0.0, 3.0]])
    passed = np.array([True, True, False, False])
    direction = mean_difference(x, passed)
    np.testing.assert_allclose(direction, [3.0, -2.0])
    np.testing.assert_allclose(project(x, direction), x @ np.array([3.0, -2.0]) / np.sqrt(13.0))
    np.testing.assert_allclose(project(x, np.zeros(2)), np.zeros(4))


@pytest.mark.parametrize("passed", [np.zeros(6, bool), np.ones(6, bool)])
def test_probe_is_none_with_one_class(passed):
    x = np.random.default_rng(0).normal(size=(6, 4))
    assert mean_difference(x, passed) is None
    assert in_sample_auroc(x, passed) is None
    cv = cross_validated_auroc(x, passed)
    assert cv.auroc is None and cv.n_folds == 0


def test_cross_validation_needs_two_tasks_per_class():
    x = np.random.default_rng(0).normal(size=(6, 4))
    one_pass = np.array([True, False, False, False, False, False])
    assert cross_validated_auroc(x, one_pass).auroc is None
    two_pass = np.array([True, True, False, False, False, False])
    cv = cross_validated_auroc(x, two_pass)
    assert cv.n_folds == 2 and cv.auroc is not None


def test_planted_signal_is_found_in_and_out_of_sample():
    rng = np.random.default_rng(0)
    passed = rng.random(200) < 0.3
    x = rng.normal(size=(200, 64))
    x[passed, 0] += 3.0
    assert in_sample_auroc(x, passed) > 0.95
    cv = cross_validated_auroc(x, passed)
    assert cv.n_folds == 5 and cv.auroc > 0.9


def test_in_sample_auroc_is_optimistic_on_pure_noise():
    # More dimensions than tasks: the fitted direction separates noise in-sample, not out.
    rng = np.random.default_rng(0)
    passed = np.arange(80) < 20
    x = rng.normal(size=(80, 256))
    assert in_sample_auroc(x, passed) > 0.95
    assert abs(cross_validated_auroc(x, passed).auroc - 0.5) < 0.15


def test_cross_validation_is_deterministic_per_seed():
    rng = np.random.default_rng(3)
    passed = rng.random(50) < 0.4
    x = rng.normal(size=(50, 8))
    first, second = cross_validated_auroc(x, passed, seed=7), cross_validated_auroc(x, passed, seed=7)
    assert first == second
    np.testing.assert_array_equal(first.scores, second.scores)
    assert first.scores.shape == (50,)
    assert not np.array_equal(cross_validated_auroc(x, passed, seed=8).scores, first.scores)
