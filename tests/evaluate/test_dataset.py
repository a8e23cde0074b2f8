"""The dataset contract on hand-made results (pure: no sandbox), and evaluate's metadata read back by report.

Every column and metadata key issues 12 and 15 added has a check here; tests/evaluate/test_score.py
checks the same contract on files written by a real evaluation.
"""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path

import pandas as pd
import pytest

from artifacts.schema import dataset as keys
from artifacts.feature_list import BestLayers, resolve_layers
from evaluate.dataset import (
    CONTRACT_COLUMNS,
    EXTRA_COLUMNS,
    build_dataset,
    build_metadata,
    build_phase_output,
    feature_list_folder,
    layers_block,
    verdict_stats,
)
from evaluate.extract import Extraction, ExtractionMethod
from evaluate.verdict import ErrorType, ExecutionResult, Verdict
from report.load import ReportInputs
from report.stats import compute_stats, replay_fidelity, stage_costs

TESTS = {1: ["assert f(1) == 2", "assert f(2) == 3"], 2: ["assert math.isclose(g(1), 0.5)", "assert g(2) == 1"],
         3: ["assert h() == []"]}


def passed(n: int) -> ExecutionResult:
    return ExecutionResult(True, None, None, n, n, 0.1)


def failed(n: int, message: str, error_type: ErrorType = ErrorType.ASSERTION_FAILED) -> ExecutionResult:
    return ExecutionResult(False, error_type, message, 0, n, 0.1)


ROWS = pd.DataFrame(
    {
        "task_id": [3, 1, 2],
        "prompt": ["p3", "p1", "p2"],
        "completion": ["c3", "c1", "c2"],
        "test_list": [TESTS[3], TESTS[1], TESTS[2]],
        "cyclomatic_complexity": [1, 2, 5],
        "generation_time": [0.5, None, 1.5],
        "finish_reason": ["stop", "length", "stop"],
    }
)
EXTRACTIONS = {
    1: Extraction("def f(x):\n    return x + 1", ExtractionMethod.FENCED),
    2: Extraction("def g(x):\n    return 0.5", ExtractionMethod.RAW),
    3: Extraction("", ExtractionMethod.NONE),
}
RESULTS = {
    Verdict.ROBUST: {1: passed(2), 2: failed(2, "test 2/2 failed: assert g(2) == 1 (returned 0.5, expected 1)")},
    Verdict.LEGACY: {1: failed(2, "the code failed: SyntaxError: invalid syntax", ErrorType.SYNTAX_ERROR),
                     2: failed(2, "test 2/2 failed: assert g(2) == 1"), 3: passed(1)},
}


@pytest.mark.parametrize("verdict", list(Verdict))
def test_columns_order_types_and_the_chosen_verdict(verdict):
    df = build_dataset(ROWS, EXTRACTIONS, RESULTS, verdict=verdict)
    names = [n for n, _ in (*CONTRACT_COLUMNS, *EXTRA_COLUMNS)]
    assert list(df.columns) == [*names, "finish_reason"]
    assert names[len(CONTRACT_COLUMNS):] == [
        "completion", "error_type", "n_tests_passed", "n_tests", "n_tests_trusted", "extraction_method",
        "robust_test_passed", "robust_error_message", "legacy_test_passed", "legacy_error_message", "baseline_passed",
    ]
    for name, dtype in (*CONTRACT_COLUMNS, *EXTRA_COLUMNS):
        assert str(df[name].dtype) == dtype, name
    assert df["task_id"].tolist() == [1, 2, 3]
    rows = df.set_index("task_id")
    # Both verdicts are always kept; the chosen one fills test_passed and its companions.
    assert rows["robust_test_passed"].tolist() == [True, False, False]
    assert rows["legacy_test_passed"].tolist() == [False, False, True]
    assert rows.loc[3, "robust_error_message"] == "no parsable Python code in the completion"
    assert rows.loc[1, "legacy_error_message"] == "the code failed: SyntaxError: invalid syntax"
    assert rows["test_passed"].tolist() == rows[keys.VERDICT_COLUMNS[verdict.value]].tolist()
    assert rows["baseline_passed"].tolist() == rows["test_passed"].tolist()
    prefix = verdict.value
    assert rows["error_message"].tolist() == rows[f"{prefix}_error_message"].tolist()
    assert rows["error_message"].isna().tolist() == rows["test_passed"].tolist() == rows["error_type"].isna().tolist()
    # Tests decided in the parent: `assert EXPR == LITERAL` only.
    assert rows["n_tests_trusted"].tolist() == [2, 1, 1] and rows["n_tests"].tolist() == [2, 2, 1]


def test_metadata_keys_of_issues_12_and_15():
    df = build_dataset(ROWS, EXTRACTIONS, RESULTS, verdict=Verdict.LEGACY)
    meta = build_metadata(
        df, excluded_ids=[4], gen_meta=None, act_meta=None, sandbox={}, inputs={}, wall_time_s=1.0,
        verdict=Verdict.LEGACY, model_type="base", completion_column="generated_code",
    )
    json.dumps(meta, allow_nan=False)
    assert meta[keys.VERDICT] == "legacy" and meta[keys.MODEL_TYPE] == "base"
    assert meta[keys.COMPLETION_COLUMN] == "generated_code"
    assert (meta[keys.META_N_TESTS], meta[keys.META_N_TESTS_TRUSTED]) == (5, 4)
    assert meta[keys.VERDICTS] == {
        "robust": {"n_correct": 1, "n_incorrect": 2, "pass_rate": pytest.approx(1 / 3)},
        "legacy": {"n_correct": 1, "n_incorrect": 2, "pass_rate": pytest.approx(1 / 3)},
    }
    assert meta[keys.STATS]["n_correct"] == 1 and meta[keys.STATS]["error_types"]["syntax_error"] == 1
    assert meta[keys.EXTRACTION_LAYERS] is None and meta[keys.BEST_LAYERS_SOURCE] is None
    assert meta[keys.BEST_LAYERS] == dict.fromkeys(("correct", "incorrect", "correct_feature_idx", "incorrect_feature_idx"))
    assert verdict_stats(df.iloc[:0])["legacy"] == {"n_correct": 0, "n_incorrect": 0, "pass_rate": 0.0}


def test_validation_task_ids_are_the_attempted_tasks():
    # Issue 18: the earlier tool listed the attempted range (included + excluded), not every problem.
    df = build_dataset(ROWS, EXTRACTIONS, RESULTS)
    meta = build_metadata(df, excluded_ids=[0, 9], gen_meta=None, act_meta=None, sandbox={}, inputs={},
                          wall_time_s=1.0)
    assert meta[keys.VALIDATION_TASK_IDS] == [0, 1, 2, 3, 9]
    assert len(meta[keys.VALIDATION_TASK_IDS]) == meta[keys.N_TASKS_ATTEMPTED] == 5


@pytest.mark.parametrize(("given", "written"), [("instruction-tuned", "instruction-tuned"),
                                                 ("instruction_tuned", "instruction-tuned"), ("base", "base")])
def test_model_type_is_written_with_the_earlier_spelling(given, written):
    # Issue 18: the earlier tool wrote instruction-tuned; our old spelling is still read.
    meta = build_metadata(build_dataset(ROWS, EXTRACTIONS, RESULTS), excluded_ids=[], gen_meta=None, act_meta=None,
                          sandbox={}, inputs={}, wall_time_s=1.0, model_type=given)
    assert meta[keys.MODEL_TYPE] == written == keys.normalize_model_type(meta[keys.MODEL_TYPE])
    assert keys.dataset_file_name(given) == keys.DATASET_FILES[written]


def test_an_unknown_model_type_is_refused():
    with pytest.raises(ValueError, match="instruction-tuned, base"):
        keys.normalize_model_type("chat")


def test_the_layers_block_is_copied_from_the_replay(phase2_10_dir):
    # The replay writes artifacts.feature_list's block; evaluate copies it without reading the feature list.
    best = resolve_layers([phase2_10_dir], None).to_metadata()
    act_meta = {"hook_point": "resid_pre", "layers": [16, 19], **best}
    assert layers_block(act_meta) == best
    meta = build_metadata(build_dataset(ROWS, EXTRACTIONS, RESULTS), excluded_ids=[], gen_meta=None,
                          act_meta=act_meta, sandbox={}, inputs={}, wall_time_s=1.0)
    assert {k: meta[k] for k in keys.LAYER_KEYS} == best
    assert meta[keys.BEST_LAYERS] == {"correct": 16, "incorrect": 19, "correct_feature_idx": 14439,
                                      "incorrect_feature_idx": 5441}
    # Overridden layers keep the replay's source and layers.
    override = resolve_layers([phase2_10_dir], "3,5").to_metadata()
    assert layers_block({**act_meta, **override})[keys.EXTRACTION_LAYERS] == [3, 5]
    # The feature-list folder (phase_output.json's dependency) is found in both forms of the writer's source.
    assert feature_list_folder(best[keys.BEST_LAYERS_SOURCE]) == feature_list_folder(
        override[keys.BEST_LAYERS_SOURCE]) == phase2_10_dir
    assert feature_list_folder(resolve_layers([], "3,5").to_metadata()[keys.BEST_LAYERS_SOURCE]) is None


def test_layers_are_unknown_without_the_block():
    unknown = {keys.BEST_LAYERS: dict.fromkeys(keys.BEST_LAYERS_FIELDS), keys.EXTRACTION_LAYERS: None,
               keys.BEST_LAYERS_SOURCE: None}
    assert layers_block(None) == layers_block({"hook_point": "resid_pre"}) == unknown
    # An older replay file without the block still names the layers it replayed.
    assert layers_block({"layers": [16, 19]}) == {**unknown, keys.EXTRACTION_LAYERS: [16, 19]}


def test_key_names_agree_with_their_writers():
    block = BestLayers(16, 19, 1, 2, (16, 19), "x").to_metadata()
    assert tuple(block) == keys.LAYER_KEYS and tuple(block[keys.BEST_LAYERS]) == keys.BEST_LAYERS_FIELDS
    assert {v.value for v in Verdict} == set(keys.VERDICT_COLUMNS) == {keys.VERDICT_ROBUST, keys.VERDICT_LEGACY}
    from artifacts.layout import DATASET_FILE

    assert keys.dataset_file_name(keys.MODEL_TYPE_INSTRUCT) == DATASET_FILE == "dataset_instruct_temp_0_0.parquet"
    assert keys.dataset_file_name(keys.MODEL_TYPE_BASE) == "dataset_base_temp_0_0.parquet"


@pytest.mark.parametrize(
    ("source", "folder"),
    [
        ("/ref/phase2_10/top_20_features.json", "/ref/phase2_10"),
        ("--layers (best features from /ref/phase2_5/top_20_latents.json)", "/ref/phase2_5"),
        ("--layers", None),
        (None, None),
    ],
)
def test_feature_list_folder_from_the_source(source, folder):
    assert feature_list_folder(source) == (None if folder is None else Path(folder))


def test_phase_output_manifest(tmp_path):
    # The shape common/phase_discovery.py of the newer research code reads.
    manifest = build_phase_output(
        dataset_file="dataset_base_temp_0_0.parquet", model_name="m", problems_folder=tmp_path / "phase0_1",
        best_layers_source=str(tmp_path / "p210" / "top_20_features.json"), extra_outputs={"activations": "activations"},
    )
    assert set(manifest) == {"phase", "created_at", "config", "outputs", "dependencies"}
    assert manifest["phase"] == "7.3" and datetime.fromisoformat(manifest["created_at"])
    assert manifest["config"] == {"model_name": "m", "dataset_name": "mbpp"}
    assert manifest["outputs"] == {"primary": "dataset_base_temp_0_0.parquet", "metadata": "metadata.json",
                                   "activations": "activations"}
    assert manifest["dependencies"] == {"0.1": str(tmp_path / "phase0_1"), "2.10": str(tmp_path / "p210")}
    from_2_5 = build_phase_output(dataset_file="d", model_name=None, problems_folder=tmp_path, best_layers_source=str(
        tmp_path / "p25" / "top_20_features.json"), phase2_5_folder=tmp_path / "p25")
    assert from_2_5["dependencies"] == {"0.1": str(tmp_path), "2.5": str(tmp_path / "p25")}
    unknown = build_phase_output(dataset_file="d", model_name=None, problems_folder=tmp_path, best_layers_source=None)
    assert unknown["dependencies"] == {"0.1": str(tmp_path)} and unknown["outputs"]["primary"] == "d"


def test_metadata_written_by_evaluate_is_read_by_report():
    # Issue 11: the report reads the keys evaluate writes (it used to look for replay_fidelity).
    verify = {"n_tasks": 4, "max_rel_error": 1e-6, "fidelity": 1.0}
    act_meta = {"model": "m", "hook_point": "resid_pre", "layers": [16, 19], "verify": verify}
    df = build_dataset(ROWS, EXTRACTIONS, RESULTS)
    meta = json.loads(json.dumps(build_metadata(
        df, excluded_ids=[], gen_meta={"model": "m", "prompt_style": "chat"}, act_meta=act_meta, sandbox={},
        inputs={}, wall_time_s=2.5,
    )))
    assert meta[keys.FIDELITY] == 1.0 and meta[keys.REPLAY_VERIFY] == verify
    assert replay_fidelity(None, meta) == verify
    (cost,) = stage_costs(None, None, meta)
    assert (cost.stage, cost.n_tasks, cost.wall_time_s) == ("evaluate", 3, 2.5)
    stats = compute_stats(ReportInputs(None, df, meta, None, None, None, ()))  # type: ignore[arg-type]
    assert (stats.model, stats.hook_point, stats.verdict) == ("m", "resid_pre", "robust")
    assert stats.verdicts.only_robust == (1,) and stats.verdicts.only_legacy == (3,)
