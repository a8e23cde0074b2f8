"""Statistics on small hand-made frames, including zero-pass and all-pass datasets; the report's AUROC (the
shared stats.auroc) against hand-computed values, a brute-force definition and scikit-learn; the mean-difference
probe's honesty on the shared folds."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import roc_auc_score

from report.load import LayerActivations, ReportInputs
from report.stats import (
    category_counts,
    class_auroc,
    complexity_group,
    completion_lengths,
    compute_stats,
    cross_validated_auroc,
    error_type_counts,
    in_sample_projection,
    layer_separation,
    pass_rates,
    replay_fidelity,
    stage_costs,
    summarize,
    verdict_agreement,
)


def frame(passed: list[bool], cc: list[int], **extra) -> pd.DataFrame:
    return pd.DataFrame(
        {"task_id": np.arange(1, len(passed) + 1), "test_passed": passed, "cyclomatic_complexity": cc, **extra}
    )


@pytest.mark.parametrize(
    ("cc", "group"),
    [(1, "easy"), (2, "medium"), (3, "medium"), (4, "hard"), (17, "hard"), (None, None)],
)
def test_complexity_group_boundaries(cc, group):
    assert complexity_group(cc) == group


def test_pass_rates_overall_and_by_group():
    df = frame([True, False, True, False, False, True], [1, 1, 2, 3, 5, 4])
    rates = {r.label: r for r in pass_rates(df)}
    assert [r.label for r in pass_rates(df)] == ["overall", "easy", "medium", "hard"]
    assert (rates["overall"].n_tasks, rates["overall"].n_passed) == (6, 3)
    assert (rates["easy"].n_tasks, rates["easy"].n_passed, rates["easy"].rate) == (2, 1, 0.5)
    assert (rates["medium"].n_tasks, rates["medium"].n_passed) == (2, 1)
    assert (rates["hard"].n_tasks, rates["hard"].n_passed) == (2, 1)


def test_pass_rates_zero_pass_all_pass_and_empty_group():
    none_passed = {r.label: r for r in pass_rates(frame([False, False], [1, 2]))}
    assert none_passed["overall"].rate == 0.0 and none_passed["easy"].rate == 0.0
    assert none_passed["hard"].n_tasks == 0 and none_passed["hard"].rate is None
    all_passed = {r.label: r for r in pass_rates(frame([True, True, True], [1, 4, 9]))}
    assert all_passed["overall"].rate == 1.0 and all_passed["hard"].n_passed == 2
    assert all_passed["medium"].rate is None


def test_category_counts_orders_by_frequency_and_names_nulls():
    values = pd.Series(["stop", None, "length", "stop", "stop", None])
    passed = pd.Series([True, False, False, True, False, False])
    counts = category_counts(values, passed)
    assert [(c.label, c.n_tasks, c.n_passed) for c in counts] == [("stop", 3, 2), ("unknown", 2, 0), ("length", 1, 0)]


def test_error_types_count_failed_tasks_only():
    df = frame([True, False, False, False], [1, 1, 1, 1], error_type=[None, "timeout", "timeout", None])
    assert [(c.label, c.n_tasks) for c in error_type_counts(df)] == [("timeout", 2), ("unknown", 1)]
    assert error_type_counts(frame([True], [1])) == ()


def test_completion_lengths_prefer_tokens_then_characters():
    df = frame([True, False, False], [1, 1, 1], completion=["ab", "abcd", None])
    gens = pd.DataFrame({"n_completion_tokens": [5.0, None, 7.0]})
    tokens = completion_lengths(df, gens)
    assert tokens.unit == "tokens"
    np.testing.assert_array_equal(tokens.values, [5.0, 7.0])
    np.testing.assert_array_equal(tokens.passed, [True, False])
    chars = completion_lengths(df, pd.DataFrame(index=range(3)))
    assert chars.unit == "characters"
    np.testing.assert_array_equal(chars.values, [2.0, 4.0, 0.0])
    assert completion_lengths(frame([True], [1]), pd.DataFrame(index=range(1))) is None


def test_summarize_ignores_nulls_and_handles_empty():
    s = summarize(pd.Series([1.0, None, 3.0, 8.0]))
    assert (s.n, s.mean, s.median, s.min, s.max, s.total) == (3, 4.0, 3.0, 1.0, 8.0, 12.0)
    assert summarize(np.array([])).mean is None


def test_stage_costs_only_report_recorded_numbers():
    costs = stage_costs(
        {"n_tasks": 4, "wall_time_s": 2.0, "n_completion_tokens": 100, "tokens_per_s": 50.0},
        {"n_tasks": 4, "wall_time_s": 1.5},
        None,
    )
    assert [c.stage for c in costs] == ["generate", "replay"]
    assert (costs[0].n_tokens, costs[0].tokens_per_s) == (100, 50.0)
    assert (costs[1].wall_time_s, costs[1].n_tokens, costs[1].tokens_per_s) == (1.5, None, None)
    assert stage_costs(None, None, None) == ()


def test_replay_fidelity_prefers_activation_metadata_then_the_copy_evaluate_writes():
    verify = {"n_tasks": 3, "max_rel_error": 0.01, "fidelity": 0.99}
    assert replay_fidelity({"verify": verify}, {"replay_verify": {"fidelity": 0.5}}) == verify
    assert replay_fidelity({"verify": None}, {"replay_verify": {"fidelity": 0.5}}) == {"fidelity": 0.5}
    assert replay_fidelity(None, {"fidelity": 0.5, "replay_verify": None}) is None
    assert replay_fidelity(None, None) is None


def test_verdict_agreement_counts_and_names_the_tasks_that_differ():
    df = frame(
        [True, True, False, False, True], [1, 2, 4, 1, 1],
        robust_test_passed=[True, True, False, False, True], legacy_test_passed=[True, False, True, False, False],
    )
    v = verdict_agreement(df)
    assert v.counts == {(True, True): 1, (True, False): 2, (False, True): 1, (False, False): 1}
    assert v.only_robust == (2, 5) and v.only_legacy == (3,) and v.n_differ == 3
    assert [(r.label, r.n_passed) for r in v.rates["robust"]][:2] == [("overall", 3), ("easy", 2)]
    assert [(r.label, r.n_passed) for r in v.rates["legacy"]][:2] == [("overall", 2), ("easy", 1)]
    assert verdict_agreement(frame([True], [1])) is None
    assert verdict_agreement(frame([True], [1], legacy_test_passed=[True])) is None


def layer(task_ids: list[int], x: np.ndarray, missing: tuple[int, ...] = ()) -> LayerActivations:
    return LayerActivations(16, np.array(task_ids, dtype=np.int64), x.astype(np.float32), missing)


def test_layer_separation_aligns_tasks_by_id():
    # Activation rows come in a different order than the dataset and miss task 3.
    df = frame([True, False, True, False, True], [1, 1, 1, 1, 1])
    x = np.array([[0.0, 1.0], [5.0, 0.0], [0.0, 2.0], [6.0, 0.0]])  # tasks 4 (failed), 1 (passed), 2 (failed), 5
    sep = layer_separation(layer([4, 1, 2, 5], x, missing=(3,)), df)
    np.testing.assert_array_equal(sep.passed, [False, True, False, True])
    np.testing.assert_allclose(sep.norms, [1.0, 5.0, 2.0, 6.0])
    assert sep.n_missing == 1 and sep.d_model == 2
    assert sep.norm_auroc == 1.0 and sep.projection_auroc == 1.0
    assert sep.cross_validated.n_folds == 2 and sep.cross_validated.auroc == 1.0


@pytest.mark.parametrize("outcome", [False, True])
def test_compute_stats_with_a_single_outcome(outcome):
    n = 6
    df = frame([outcome] * n, [1, 2, 3, 4, 1, 2], error_type=[None if outcome else "timeout"] * n)
    x = np.random.default_rng(0).normal(size=(n, 3))
    inputs = ReportInputs(Path("d.parquet"), df, None, None, None, None, (layer(list(range(1, n + 1)), x),))
    stats = compute_stats(inputs)
    assert stats.pass_rates[0].rate == float(outcome)
    (sep,) = stats.layers
    assert sep.projections is None
    assert sep.norm_auroc is None and sep.projection_auroc is None and sep.cross_validated.auroc is None
    assert (sep.n_passed, sep.n_failed) == ((n, 0) if outcome else (0, n))
    assert stats.finish_reasons == () and stats.stage_costs == () and stats.model is None


def rank_auroc(pos, neg):
    """The report's AUROC of two classes of scores (passed first)."""
    pos, neg = np.asarray(pos, dtype=float), np.asarray(neg, dtype=float)
    return class_auroc(np.concatenate([pos, neg]), np.arange(pos.size + neg.size) < pos.size)


def in_sample_auroc(x: np.ndarray, passed: np.ndarray) -> float | None:
    """The report's in-sample projection AUROC (``layer_separation`` computes it this way)."""
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


def test_projection_on_the_mean_difference():
    x = np.array([[2.0, 0.0], [4.0, 0.0], [0.0, 1.0], [0.0, 3.0]])
    passed = np.array([True, True, False, False])
    # Mean difference (3, 0) - (0, 2) = (3, -2); each row projected on its unit vector.
    np.testing.assert_allclose(in_sample_projection(x, passed), x @ np.array([3.0, -2.0]) / np.sqrt(13.0))
    same_means = np.array([[1.0, 0.0], [-1.0, 0.0], [0.0, 1.0], [0.0, -1.0]])  # both classes average (0, 0)
    np.testing.assert_allclose(in_sample_projection(same_means, passed), np.zeros(4))


@pytest.mark.parametrize("passed", [np.zeros(6, bool), np.ones(6, bool)])
def test_probe_is_none_with_one_class(passed):
    x = np.random.default_rng(0).normal(size=(6, 4))
    assert in_sample_projection(x, passed) is None
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
