import itertools

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from stats.permutation import bh_q_values, permutation_p_value, permutation_p_values


def _exact_p(scores: np.ndarray, positive: np.ndarray) -> float:
    """The exact one-sided p-value: every arrangement of the positives, scored by roc_auc_score."""
    n, k = scores.size, int(positive.sum())
    observed = roc_auc_score(positive, scores)
    count = total = 0
    for chosen in itertools.combinations(range(n), k):
        labels = np.zeros(n, dtype=bool)
        labels[list(chosen)] = True
        count += roc_auc_score(labels, scores) >= observed - 1e-12  # AUROCs are multiples of 1/(k(n-k))
        total += 1
    return count / total


@pytest.mark.parametrize("seed", range(3))
def test_matches_the_exact_permutation_distribution(seed):
    """10,000 random permutations estimate the exact p-value (210 arrangements) to within its
    binomial error: sd = sqrt(p (1 - p) / 10,000) <= 0.005, plus the +1 term (1e-4); bound 0.02
    (4 sd)."""
    rng = np.random.default_rng(seed)
    positive = np.zeros(10, dtype=bool)
    positive[rng.choice(10, 4, replace=False)] = True
    scores = np.round(rng.standard_normal(10) + 0.8 * positive, 1)  # some ties
    assert abs(permutation_p_value(scores, positive, seed=seed) - _exact_p(scores, positive)) < 0.02


def test_a_planted_feature_gets_the_smallest_p_value():
    rng = np.random.default_rng(0)
    positive = rng.random(200) < 0.3
    scores = rng.standard_normal(200) + 2.0 * positive
    assert permutation_p_value(scores, positive) == 1 / 10_001


def test_one_sided_in_the_listed_direction():
    """A feature listed for failed tasks is tested for high scores on failed tasks."""
    rng = np.random.default_rng(1)
    passed = rng.random(150) < 0.4
    scores = rng.standard_normal(150) - 1.0 * passed  # high on failed tasks
    assert permutation_p_value(scores, ~passed, n_permutations=2000) < 0.01
    assert permutation_p_value(scores, passed, n_permutations=2000) > 0.99


def test_never_firing_feature_has_p_value_one():
    positive = np.array([True, True, False, False, False])
    assert permutation_p_value(np.zeros(5), positive) == 1.0


def test_null_p_values_are_uniform():
    """400 null features on 100 tasks: the fraction of p <= alpha is ~alpha.

    Binomial sd at alpha = 0.05: sqrt(0.05 x 0.95 / 400) = 0.011; bounds 0.05 +- 0.035 (3.2 sd).
    At alpha = 0.5: sd 0.025, bounds 0.5 +- 0.08. Measured over 10 other seeds: 0.035-0.063 and 0.48-0.57.
    """
    rng = np.random.default_rng(2)
    positive = rng.random(100) < 0.3
    p = permutation_p_values(rng.standard_normal((100, 400)), positive, n_permutations=2000, seed=3)
    assert abs(np.mean(p <= 0.05) - 0.05) <= 0.035
    assert abs(np.mean(p <= 0.5) - 0.5) <= 0.08


def test_columns_share_permutations_and_directions():
    """Each column gets what it gets alone with the same seed, whatever its direction."""
    rng = np.random.default_rng(4)
    passed = rng.random(80) < 0.5
    scores = rng.standard_normal((80, 4)) + 0.4 * passed[:, None]
    labels = np.column_stack([passed, ~passed, passed, ~passed])
    together = permutation_p_values(scores, labels, n_permutations=3000, seed=8)
    alone = [permutation_p_value(scores[:, j], labels[:, j], n_permutations=3000, seed=8) for j in range(4)]
    assert together.tolist() == alone


def _textbook_bh(p: np.ndarray) -> np.ndarray:
    """Benjamini-Hochberg as written in the paper: q_(i) = min over j >= i of p_(j) m / j."""
    m = p.size
    order = np.argsort(p)
    ranked = p[order] * m / np.arange(1, m + 1)
    q = np.minimum.accumulate(ranked[::-1])[::-1]
    out = np.empty(m)
    out[order] = np.minimum(q, 1.0)
    return out


def test_matches_the_textbook_procedure():
    p = np.random.default_rng(0).random(50) ** 3
    np.testing.assert_allclose(bh_q_values(p), _textbook_bh(p), rtol=1e-12)  # measured: equal to the last bit


def test_nan_p_values_stay_nan_and_do_not_count():
    p = np.array([0.01, np.nan, 0.04, 0.03, np.nan])
    q = bh_q_values(p)
    assert np.isnan(q[[1, 4]]).all()
    np.testing.assert_allclose(q[[0, 2, 3]], _textbook_bh(p[[0, 2, 3]]), rtol=1e-12)  # 3 tests, not 5
    assert np.isnan(bh_q_values(np.array([np.nan]))).all()
    assert bh_q_values(np.array([])).size == 0


def test_planted_feature_is_found_and_nulls_are_not():
    """One planted feature among 240 null ones on the same 100 tasks, the run's 80-test layout
    (both directions): the planted q < 0.05; nulls with q < 0.05 at most 5 % (their raw p-values
    fall below 0.05 about 5 % of the time, which the correction must not let through)."""
    rng = np.random.default_rng(0)
    passed = rng.random(100) < 0.3
    scores = rng.standard_normal((100, 241))
    scores[:, 0] += 1.5 * passed  # a "correct" feature
    labels = np.column_stack([passed] + [passed if j % 2 else ~passed for j in range(240)])
    p = permutation_p_values(scores, labels, seed=1)
    q = bh_q_values(p)
    assert q[0] < 0.05
    assert np.mean(q[1:] < 0.05) <= 0.05
    assert 0 < np.mean(p[1:] < 0.05) < 0.1  # the nulls' raw p-values do fall below 0.05
