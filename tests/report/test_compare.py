"""Base-model comparison: shared tasks, per-group rates, confusion counts, agreement, kappa."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from artifacts.errors import InputError
from artifacts.files import write_json, write_parquet
from report.compare import compare_datasets


def ours() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "task_id": np.array([1, 2, 3, 4, 5, 6], dtype=np.int64),
            "test_passed": [True, True, False, False, True, False],
            "cyclomatic_complexity": pd.array([1, 2, 4, 1, 3, 5], dtype="Int64"),
        }
    )


def write_base(path, task_ids, passed, **extra):
    write_parquet(path, pd.DataFrame({"task_id": task_ids, "test_passed": passed, **extra}))
    return path


def test_confusion_counts_agreement_and_kappa(tmp_path):
    # Shared tasks 1-5 (task 6 only ours, 9 only base); base has no complexity column.
    base = write_base(tmp_path / "base.parquet", [5, 4, 3, 2, 1, 9], [False, True, False, True, True, True])
    (c,) = compare_datasets(ours(), base, label="it")
    assert (c.verdict, c.base_verdict, c.verdicts) == ("verdict unknown",) * 3
    assert (c.n_shared, c.n_only_ours, c.n_only_base) == (5, 1, 1)
    assert c.per_task["task_id"].tolist() == [1, 2, 3, 4, 5]
    assert c.count(ours=True, base=True) == 2  # tasks 1, 2
    assert c.count(ours=True, base=False) == 1  # task 5
    assert c.count(ours=False, base=True) == 1  # task 4
    assert c.count(ours=False, base=False) == 1  # task 3
    assert c.agreement == pytest.approx(3 / 5)
    # p_ours = p_base = 3/5: chance agreement 0.52, kappa (0.6 - 0.52) / 0.48.
    assert c.cohen_kappa == pytest.approx((0.6 - 0.52) / 0.48)
    rates = {r.label: r for r in c.rates}
    base_rates = {r.label: r for r in c.base_rates}
    assert (rates["overall"].n_tasks, rates["overall"].n_passed) == (5, 3)
    assert (base_rates["easy"].n_tasks, base_rates["easy"].n_passed) == (2, 2)  # tasks 1, 4 by our cc
    assert (base_rates["hard"].n_tasks, base_rates["hard"].n_passed) == (1, 0)  # task 3
    assert c.per_task.loc[c.per_task["task_id"] == 3, "complexity_group"].item() == "hard"


def test_identical_outcomes_have_no_kappa_when_chance_agreement_is_perfect(tmp_path):
    base = write_base(tmp_path / "base.parquet", [1, 2], [False, False])
    frame = ours().iloc[2:4]  # tasks 3, 4: both failed
    frame = frame.assign(task_id=[1, 2])
    (c,) = compare_datasets(frame, base)
    assert c.agreement == 1.0 and c.cohen_kappa is None


def test_no_shared_tasks(tmp_path):
    base = write_base(tmp_path / "base.parquet", [100, 101], [True, False])
    (c,) = compare_datasets(ours(), base)
    assert c.n_shared == 0 and c.agreement is None and c.cohen_kappa is None
    assert c.rates[0].rate is None and c.base_rates[0].rate is None


def test_base_label_from_metadata_or_file_name(tmp_path):
    base = write_base(tmp_path / "dataset_temp_0_0.parquet", [1], [True])
    assert compare_datasets(ours(), base, label="it")[0].base_label == "base (dataset_temp_0_0)"
    write_json(tmp_path / "metadata.json", {"model_name": "google/gemma-2-2b"})
    assert compare_datasets(ours(), base, label="it")[0].base_label == "gemma-2-2b"
    assert compare_datasets(ours(), base, label="gemma-2-2b")[0].base_label == "gemma-2-2b (base)"


def test_base_without_test_passed_is_an_input_error(tmp_path):
    write_parquet(tmp_path / "base.parquet", pd.DataFrame({"task_id": [1], "passed": [True]}))
    with pytest.raises(InputError, match="missing column.*test_passed"):
        compare_datasets(ours(), tmp_path / "base.parquet")


def with_verdicts(df: pd.DataFrame, robust, legacy) -> pd.DataFrame:
    return df.assign(robust_test_passed=robust, legacy_test_passed=legacy, test_passed=robust)


def test_each_verdict_both_datasets_carry_is_compared(tmp_path):
    mine = with_verdicts(ours(), [True, True, False, False, True, False], [True, False, False, False, False, False])
    base = write_base(tmp_path / "base.parquet", [1, 2, 3, 4, 5, 6], [True, False, True, False, False, False],
                      robust_test_passed=[True, False, True, False, False, False],
                      legacy_test_passed=[False, False, False, False, False, True])
    robust, legacy = compare_datasets(mine, base, label="it", ours_metadata={"verdict": "robust"})
    assert (robust.verdict, robust.base_verdict, robust.verdicts) == ("robust", "robust", "robust")
    assert (legacy.verdict, legacy.base_verdict) == ("legacy", "legacy")
    assert robust.per_task["passed"].tolist() == [True, True, False, False, True, False]
    assert robust.per_task["base_passed"].tolist() == [True, False, True, False, False, False]
    assert legacy.per_task["passed"].tolist() == [True, False, False, False, False, False]
    assert legacy.per_task["base_passed"].tolist() == [False, False, False, False, False, True]
    assert legacy.count(ours=True, base=False) == 1 and legacy.count(ours=False, base=True) == 1


def test_a_side_without_legacy_test_passed_is_verdict_unknown(tmp_path):
    mine = with_verdicts(ours(), [True] * 6, [False] * 6).assign(test_passed=[False] * 6)  # test_passed: legacy
    base = write_base(tmp_path / "base.parquet", [1, 2, 3], [True, False, True])  # the earlier phases' parquet
    (c,) = compare_datasets(mine, base, ours_metadata={"verdict": "legacy"})
    assert (c.verdict, c.base_verdict, c.verdicts) == ("legacy", "verdict unknown", "legacy vs verdict unknown")
    assert c.per_task["passed"].tolist() == [False, False, False]  # our test_passed, the chosen verdict
    # And the other way round: the base carries both verdicts, ours only test_passed.
    write_base(tmp_path / "b2.parquet", [1, 2], [True, True], robust_test_passed=[True, True], legacy_test_passed=[False, False])
    write_json(tmp_path / "metadata.json", {"verdict": "robust"})
    (c,) = compare_datasets(ours(), tmp_path / "b2.parquet")
    assert (c.verdict, c.base_verdict) == ("verdict unknown", "robust")
    assert c.per_task["base_passed"].tolist() == [True, True]
