"""F1 of a threshold rule: the best threshold against a brute-force search, and its cross-validation."""

import math

import numpy as np
import pytest

import stats.f1 as f1_module
from stats.f1 import best_f1_threshold, cross_validated_f1


def _f1(predicted, positive):
    tp = np.sum(predicted & positive)
    return 2 * tp / (predicted.sum() + positive.sum())


def test_best_f1_threshold_equals_a_brute_force_search():
    g = np.random.default_rng(6)
    for _ in range(30):
        scores = np.round(g.normal(size=40), 1)
        positive = g.random(40) < 0.3
        if not positive.any():
            continue
        threshold, f1 = best_f1_threshold(scores, positive)
        brute = max(_f1(scores > t, positive) for t in [-np.inf, *np.unique(scores)])
        assert f1 == pytest.approx(brute)
        assert _f1(scores > threshold, positive) == pytest.approx(f1)


def test_one_positive_task_gets_the_threshold_below_it():
    acts = np.zeros(20)
    acts[3] = 2.0
    threshold, f1 = best_f1_threshold(acts, np.arange(20) == 3)
    assert threshold == pytest.approx(1.0) and f1 == 1.0


def test_cross_validation_fits_each_threshold_on_the_other_folds_only(monkeypatch):
    calls = []
    real = f1_module.best_f1_threshold

    def spy(scores, positive):
        calls.append((len(scores), int(positive.sum())))
        return real(scores, positive)

    monkeypatch.setattr(f1_module, "best_f1_threshold", spy)
    positive = np.zeros(50, dtype=bool)
    positive[40:] = True
    f1, k = cross_validated_f1(np.arange(50.0), positive, seed=0)
    assert k == 5 and len(calls) == 5
    assert all(n == 40 and p == 8 for n, p in calls)  # each fit sees 4 of 5 folds: 8 of 10 positives
    # The positives score highest; a held-out positive just above the other folds' cut may still miss.
    assert f1 > 0.9


@pytest.mark.parametrize("n_pos", [0, 1, 30])
def test_no_cross_validation_below_two_tasks_per_class(n_pos):
    f1, k = cross_validated_f1(np.linspace(0, 1, 30), np.arange(30) < n_pos)
    assert math.isnan(f1) and k == 0
