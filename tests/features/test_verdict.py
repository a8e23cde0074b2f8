"""The verdict rules (features/verdict.py), one case per rule and boundary."""

from __future__ import annotations

import math

import pytest

from artifacts.schema import features as fm
from features.verdict import ALPHA, FVU_BOUND, FVU_CEILING, FVU_MARGIN, MIN_CLASS_TASKS, decide, rules

CARRIES, DOES_NOT, CANNOT = fm.VERDICT_CARRIES_OVER, fm.VERDICT_DOES_NOT, fm.VERDICT_CANNOT_TELL
GOOD = dict(scored=True, reason=None, n_passed=60, n_failed=140, q_value=0.001, ci_low=0.7, fvu=0.2)


@pytest.mark.parametrize(("change", "verdict", "why"), [
    ({}, CARRIES, "q 0.001 < 0.05, interval above 0.5, SAE fits (FVU 0.2 <= 0.5)"),
    ({"q_value": ALPHA}, DOES_NOT, "q 0.05 >= 0.05"),
    ({"q_value": 0.9, "ci_low": 0.3}, DOES_NOT, "q 0.9 >= 0.05"),
    ({"ci_low": 0.5}, CANNOT, "but the interval reaches 0.5"),
    ({"fvu": FVU_BOUND}, CARRIES, "FVU 0.5 <= 0.5"),
    ({"fvu": 0.51}, CANNOT, "SAE does not fit (FVU 0.51 > 0.5)"),
    ({"fvu": 0.51, "q_value": 0.9}, CANNOT, "SAE does not fit"),
    ({"fvu": math.nan}, CANNOT, "no SAE fit on these vectors"),
    ({"n_passed": MIN_CLASS_TASKS - 1}, CANNOT, "only 9 passed task(s), fewer than 10"),
    ({"n_failed": MIN_CLASS_TASKS - 1, "n_passed": 100}, CANNOT, "only 9 failed task(s)"),
    ({"n_passed": MIN_CLASS_TASKS}, CARRIES, "interval above 0.5"),
    ({"n_passed": 2, "fvu": 1300.0}, CANNOT, "SAE does not fit (FVU 1.3e+03 > 0.5); only 2 passed task(s)"),
    ({"scored": False, "reason": "no SAE for this layer"}, CANNOT, "not scored: no SAE for this layer"),
])
def test_rules_without_a_reference(change, verdict, why):
    got, reason = decide(**(GOOD | change))
    assert got == verdict and why in reason


@pytest.mark.parametrize(("fvu", "reference", "verdict"), [
    (0.7, 0.65, CARRIES),  # above the absolute bound, within the reference's + margin
    (0.75, 0.65, CARRIES),
    (0.76, 0.65, CANNOT),
    (0.2, 0.05, CANNOT),  # below the absolute bound but far worse than on the base model
])
def test_a_reference_run_replaces_the_absolute_bound_by_its_fvu_plus_the_margin(fvu, reference, verdict):
    got, reason = decide(**(GOOD | {"fvu": fvu}), reference_fvu=reference)
    assert got == verdict
    assert f"the reference's {reference:.3g} + {FVU_MARGIN}" in reason


@pytest.mark.parametrize(("fvu", "reference", "verdict"), [
    (0.98, 0.95, CARRIES),  # the reference's + margin is above the ceiling: the ceiling decides
    (1.2, 1.3, CANNOT),  # no worse than on the reference, but no better than the vectors' mean
    (430.0, 436.0, CANNOT),
])
def test_an_sae_explaining_no_more_than_the_mean_never_fits(fvu, reference, verdict):
    got, reason = decide(**(GOOD | {"fvu": fvu}), reference_fvu=reference)
    assert got == verdict and f"{FVU_CEILING} (the reference's" in reason


def test_rules_block_names_the_constants_and_the_reference():
    assert rules("gemma-2-2b") == {fm.RULE_ALPHA: ALPHA, fm.RULE_FVU_BOUND: FVU_BOUND, fm.RULE_FVU_MARGIN: FVU_MARGIN,
                                   fm.RULE_FVU_CEILING: FVU_CEILING, fm.RULE_MIN_CLASS: MIN_CLASS_TASKS,
                                   fm.RULE_REFERENCE: "gemma-2-2b"}
