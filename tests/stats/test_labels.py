import numpy as np
import pytest

from stats.labels import as_score_columns, as_scores_labels, enough_per_class, label_groups


def test_label_groups_collects_identical_columns_in_order():
    y = np.array([True, False, True, False])
    labels = np.column_stack([y, ~y, y, ~y, y])
    groups = label_groups(labels)
    assert [g[0].tolist() for g in groups] == [y.tolist(), (~y).tolist()]
    assert [g[1].tolist() for g in groups] == [[0, 2, 4], [1, 3]]


def test_shared_labels_broadcast_to_every_column():
    scores, labels = as_score_columns(np.zeros((3, 2)), np.array([True, False, True]))
    assert labels.shape == (3, 2) and labels[:, 1].tolist() == [True, False, True]


def test_enough_per_class_needs_two_of_each():
    assert enough_per_class(np.array([1, 1, 0, 0], dtype=bool))
    assert not enough_per_class(np.array([1, 0, 0, 0], dtype=bool))
    assert not enough_per_class(np.array([0, 0, 0], dtype=bool))


@pytest.mark.parametrize(
    ("scores", "labels"),
    [(np.zeros(3), np.zeros(4, dtype=bool)), (np.array([0.0, np.nan]), np.array([True, False]))],
)
def test_caller_bugs_raise(scores, labels):
    with pytest.raises(ValueError):
        as_scores_labels(scores, labels)
    with pytest.raises(ValueError):
        as_score_columns(scores, labels)
