import numpy as np

from stats.permutation import bh_q_values, permutation_p_values


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
