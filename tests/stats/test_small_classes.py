"""Every statistic is NaN, never an exception, with no task or one task in a class.

The demo model passes ~5 % of problems: 20 tasks may have 0, 1 or 2 passing.
"""

import numpy as np
import pytest

from stats.auroc import auroc, auroc_columns, weighted_auroc
from stats.bootstrap import bootstrap_auroc, bootstrap_auroc_columns, paired_auroc_difference
from stats.null_latents import null_percentile
from stats.permutation import bh_q_values, permutation_p_value, permutation_p_values
from stats.probe import out_of_fold_scores, probe

N = 20
SCORES = np.linspace(0.0, 1.0, N)
COLUMNS = np.column_stack([SCORES, SCORES[::-1], np.zeros(N)])


def _labels(n_positive: int) -> np.ndarray:
    y = np.zeros(N, dtype=bool)
    y[-n_positive:] = n_positive > 0
    return y


SMALL = {"no positive": _labels(0), "one positive": _labels(1), "one negative": ~_labels(1), "no negative": ~_labels(0)}
FUNCTIONS = {
    "auroc": lambda y: [auroc(SCORES, y)],
    "auroc_columns": lambda y: auroc_columns(COLUMNS, y),
    "weighted_auroc": lambda y: weighted_auroc(SCORES, y, np.ones((3, N))),
    "bootstrap_auroc": lambda y: list(vars(bootstrap_auroc(SCORES, y)).values()),
    "bootstrap_auroc_columns": lambda y: np.concatenate(bootstrap_auroc_columns(COLUMNS, y)),
    "paired (run a)": lambda y: list(vars(paired_auroc_difference(SCORES, y, SCORES, _labels(5))).values()),
    "paired (run b)": lambda y: list(vars(paired_auroc_difference(SCORES, _labels(5), SCORES, y)).values()),
    "permutation_p_value": lambda y: [permutation_p_value(SCORES, y, n_permutations=100)],
    "permutation_p_values": lambda y: permutation_p_values(COLUMNS, y, n_permutations=100),
    "null_percentile": lambda y: [null_percentile(auroc(SCORES, y), np.full(10, 0.5))],
    "bh_q_values": lambda y: bh_q_values(permutation_p_values(COLUMNS, y, n_permutations=100)),
    "probe": lambda y: [v for k, v in vars(probe(COLUMNS, y)).items() if k != "n_folds"],
    "out_of_fold_scores": lambda y: out_of_fold_scores(COLUMNS, y)[0],
}


@pytest.mark.parametrize("case", SMALL)
@pytest.mark.parametrize("name", FUNCTIONS)
def test_nan_for_a_small_class(name, case):
    values = np.asarray(FUNCTIONS[name](SMALL[case]), dtype=float)
    assert values.size and np.isnan(values).all()


@pytest.mark.parametrize("name", FUNCTIONS)
def test_two_per_class_is_enough(name):
    """The same calls give numbers once each class has two tasks (so the NaNs above are not
    the functions' only answer)."""
    values = np.asarray(FUNCTIONS[name](_labels(2)), dtype=float)
    assert not np.isnan(values).all()
