"""Stratified folds: scikit-learn's StratifiedKFold, the fold count from the smaller class, seeded."""

import numpy as np
import pytest

from stats.folds import fold_count, stratified_folds


@pytest.mark.parametrize(("n_pos", "expected"), [(0, 0), (1, 0), (2, 2), (3, 3), (40, 5)])
def test_fold_count_follows_the_smaller_class(n_pos, expected):
    assert fold_count(np.arange(100) < n_pos) == expected


def test_every_task_is_held_out_once_and_each_fold_holds_both_classes():
    y = np.random.default_rng(0).random(97) < 0.3
    folds = stratified_folds(y, seed=(3, 1))
    assert len(folds) == 5
    held_out = np.concatenate([test for _, test in folds])
    assert sorted(held_out.tolist()) == list(range(97))
    for train, test in folds:
        assert np.intersect1d(train, test).size == 0 and train.size + test.size == 97
        assert y[test].any() and (~y[test]).any()
        assert abs(y[test].mean() - y.mean()) < 0.1  # stratified


def test_seeded():
    y = np.arange(60) < 20
    first = stratified_folds(y, seed=(1, 2))
    same = stratified_folds(y, seed=(1, 2))
    other = stratified_folds(y, seed=(1, 3))
    assert all(np.array_equal(a[1], b[1]) for a, b in zip(first, same))
    assert not all(np.array_equal(a[1], b[1]) for a, b in zip(first, other))


def test_no_folds_with_one_task_in_a_class():
    assert stratified_folds(np.arange(10) < 1) == []
