"""Acceptance: every validation reference solution passes when evaluated as a completion.

One evaluation checks both verdicts and the tests decided in the parent (issues 12 and 15).
"""

from __future__ import annotations

import json
import shutil

import pandas as pd
import pytest

from evaluate.config import EvaluateConfig
from evaluate.stage import run

SETUP_CODE_TASKS = (367, 927)  # test_setup_code builds trees from the Node class the code defines
COUNTER_TASK = 40  # returns a collections.Counter where the tests expect dict literals


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("bwrap") is None, reason="bubblewrap (bwrap) is not installed")
def test_all_388_reference_solutions_pass(tmp_path, problems_path, validation_ids_path):
    problems = pd.read_parquet(problems_path)
    generations = tmp_path / "reference.parquet"
    problems[["task_id"]].assign(completion=problems["code"]).to_parquet(generations)
    settings = EvaluateConfig(
        data_dir=tmp_path, generations_path=generations, problems_path=problems_path, output_dir=tmp_path / "out",
        # Correctness, not speed: task 123 alone needs ~7 s of CPU, more than the 10 s
        # default allows on a busy machine. The wall time is measured by bench/evaluate.py.
        timeout=60,
    )
    result = run(settings, progress=False)
    dataset = result.dataset
    assert len(dataset) == len(json.loads(validation_ids_path.read_text())) == 388
    failed = dataset.loc[~dataset["test_passed"], ["task_id", "error_type", "error_message"]]
    assert failed.empty, failed.to_string()
    assert (dataset["n_tests_passed"] == dataset["n_tests"]).all()
    assert set(SETUP_CODE_TASKS) <= set(dataset["task_id"])
    # Sanitizing the reference code changes nothing but line endings and unused constants.
    assert (dataset["extraction_method"] == "raw").all()
    assert result.metadata["stats"]["pass_rate"] == 1.0
    assert result.metadata["validation_task_ids"] == sorted(problems["task_id"])  # all 388 attempted
    # Every one of the 1164 tests was of the form `assert EXPR == LITERAL`, so its verdict was
    # decided in the parent (a value check passes only through the parent's comparison).
    assert result.metadata["n_tests_trusted"] == result.metadata["n_tests"] == dataset["n_tests"].sum() == 1164
    assert (dataset["n_tests_trusted"] == dataset["n_tests"]).all()
    assert dataset.set_index("task_id").loc[COUNTER_TASK, "test_passed"]
    # The legacy verdict (no test_setup_code) fails exactly the two tasks that need it.
    legacy_failed = dataset.loc[~dataset["legacy_test_passed"]]
    assert legacy_failed["task_id"].tolist() == list(SETUP_CODE_TASKS), legacy_failed.to_string()
    assert legacy_failed["legacy_error_message"].str.contains("NameError").all()
    assert result.metadata["verdicts"]["legacy"]["n_correct"] == 386
    assert result.metadata["verdicts"]["robust"]["n_correct"] == 388
