"""Per-feature statistics: AUROC, its bootstrap interval, firing fractions, cross-validated F1."""

from __future__ import annotations

import math

import numpy as np
import pytest

import features.score as score_module
from features.sae import jumprelu_encode, load_sae_columns
from features.score import auroc, best_f1_threshold, bootstrap_auroc, cross_validated_f1, score_feature
from report.separation import rank_auroc
from tests.features.synthetic import gemmascope_sae


def rng(seed=0):
    return np.random.default_rng(seed)


def synthetic_tasks(n=200, n_pos=60, d_model=32, shift=4.0, seed=0):
    g = np.random.default_rng(seed)
    positive = np.zeros(n, dtype=bool)
    positive[g.choice(n, n_pos, replace=False)] = True
    direction = g.normal(size=d_model)
    direction /= np.linalg.norm(direction)
    x = g.normal(size=(n, d_model)) + 1.0
    x[positive] += shift * direction
    return x.astype(np.float32), positive, direction


def test_planted_feature_separates_and_its_interval_is_above_one_half(tmp_path):
    x, positive, direction = synthetic_tasks()
    path = gemmascope_sae(tmp_path / "params.npz", d_model=32, planted={4242: direction})
    sae = load_sae_columns(path, [4242])
    stats = score_feature(jumprelu_encode(x, sae)[:, 0], positive, rng=rng())
    assert stats.auroc > 0.95
    assert stats.auroc_ci_low > 0.5 and stats.auroc_ci_low <= stats.auroc <= stats.auroc_ci_high
    assert stats.fire_frac_positive > stats.fire_frac_negative
    assert stats.f1_cv > 0.8 and stats.f1_cv_folds == 5


def test_random_features_on_200_tasks_score_near_one_half(tmp_path):
    x, positive, _ = synthetic_tasks(shift=0.0, seed=1)
    path = gemmascope_sae(tmp_path / "params.npz", d_model=32, seed=2)
    idx = list(range(100, 16384, 820))  # 20 random latents
    acts = jumprelu_encode(x, load_sae_columns(path, idx))
    assert np.sum((acts > 0).mean(axis=0) > 0.05) >= 15  # most fire: their 0.5 is not a constant's
    values = [score_feature(acts[:, j], positive, rng=rng(j)).auroc for j in range(len(idx))]
    values = [v for v in values if not math.isnan(v)]
    assert len(values) == len(idx)
    assert all(0.35 <= v <= 0.65 for v in values), values


def test_auroc_equals_the_reports_rank_auroc_ties_included():
    g = rng(3)
    for _ in range(20):
        pos = g.integers(0, 4, size=int(g.integers(1, 30))).astype(float)  # many ties, zeros included
        neg = g.integers(0, 4, size=int(g.integers(1, 30))).astype(float)
        assert auroc(pos, neg) == pytest.approx(rank_auroc(pos, neg), abs=1e-12)


def test_bootstrap_is_seeded_and_brackets_the_estimate():
    g = rng(4)
    pos, neg = g.normal(0.5, 1, 40), g.normal(0, 1, 90)
    first = bootstrap_auroc(pos, neg, rng=rng(7))
    assert first == bootstrap_auroc(pos, neg, rng=rng(7))
    assert first != bootstrap_auroc(pos, neg, rng=rng(8))
    point, low, high = first
    assert point == pytest.approx(rank_auroc(pos, neg))
    assert low < point < high and high - low < 0.4


def test_bootstrap_matches_a_plain_resampling_loop():
    # Reweighting the comparison matrix is the same estimator as resampling tasks and recomputing.
    g = rng(5)
    pos, neg = g.normal(0.3, 1, 15), g.normal(0, 1, 25)
    _, low, high = bootstrap_auroc(pos, neg, rng=rng(1), n_bootstrap=4000)
    loop = rng(2)
    values = [rank_auroc(loop.choice(pos, pos.size), loop.choice(neg, neg.size)) for _ in range(4000)]
    ref_low, ref_high = np.percentile(values, [2.5, 97.5])
    assert low == pytest.approx(ref_low, abs=0.03) and high == pytest.approx(ref_high, abs=0.03)


@pytest.mark.parametrize("n_pos", [0, 30])
def test_a_class_without_tasks_gives_nan_not_an_error(n_pos):
    positive = np.zeros(30, dtype=bool)
    positive[:n_pos] = True
    stats = score_feature(np.linspace(0, 1, 30), positive, rng=rng())
    assert math.isnan(stats.auroc) and math.isnan(stats.auroc_ci_low) and math.isnan(stats.auroc_ci_high)
    assert math.isnan(stats.f1_cv) and stats.f1_cv_folds == 0
    assert stats.fire_frac == pytest.approx(29 / 30)
    missing = stats.fire_frac_positive if n_pos == 0 else stats.fire_frac_negative
    assert math.isnan(missing)


def test_one_task_in_a_class_has_an_auroc_but_no_cross_validation():
    positive = np.zeros(20, dtype=bool)
    positive[3] = True
    acts = np.zeros(20)
    acts[3] = 2.0
    stats = score_feature(acts, positive, rng=rng())
    assert stats.auroc == 1.0 and stats.auroc_ci_low == 1.0
    assert math.isnan(stats.f1_cv) and stats.f1_cv_folds == 0
    assert stats.f1_threshold == pytest.approx(1.0)  # midway between 0 and 2


def test_best_f1_threshold_equals_a_brute_force_search():
    g = rng(6)
    for _ in range(30):
        scores = np.round(g.normal(size=40), 1)
        positive = g.random(40) < 0.3
        if not positive.any():
            continue
        threshold, f1 = best_f1_threshold(scores, positive)
        brute = max(_f1(scores > t, positive) for t in [-np.inf, *np.unique(scores)])
        assert f1 == pytest.approx(brute)
        assert _f1(scores > threshold, positive) == pytest.approx(f1)


def _f1(predicted, positive):
    tp = np.sum(predicted & positive)
    return 2 * tp / (predicted.sum() + positive.sum())


def test_cross_validation_fits_each_threshold_on_the_other_folds_only(monkeypatch):
    calls = []
    real = score_module.best_f1_threshold

    def spy(scores, positive):
        calls.append((len(scores), int(positive.sum())))
        return real(scores, positive)

    monkeypatch.setattr(score_module, "best_f1_threshold", spy)
    positive = np.zeros(50, dtype=bool)
    positive[:10] = True
    f1, k = cross_validated_f1(np.arange(50.0), positive, rng=rng())
    assert k == 5 and len(calls) == 5
    assert all(n == 40 and p == 8 for n, p in calls)  # each fit sees 4 of 5 folds: 8 of 10 positives
    assert 0.0 <= f1 <= 1.0
