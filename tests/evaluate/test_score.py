"""The stage's files (dataset parquet, metadata.json, phase_output.json) against the downstream contract (issue 6)."""

from __future__ import annotations

import json
import math
import shutil

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from artifacts.errors import InputError
from artifacts.feature_list import resolve_layers
from artifacts.files import write_json
from artifacts.layout import ACTIVATIONS_METADATA_FILE, GENERATIONS_METADATA_FILE
from artifacts.records import is_current, read_record
from evaluate.config import EvaluateConfig
from evaluate.dataset import CONTRACT_COLUMNS, EXTRA_COLUMNS
from evaluate.verdict import ErrorType
from evaluate.stage import run
from problems.prompts import build_prompt

pytestmark = pytest.mark.skipif(shutil.which("bwrap") is None, reason="bubblewrap (bwrap) is not installed")

CONTRACT_TYPES = {
    "task_id": pa.types.is_integer,
    "temperature": pa.types.is_floating,
    "prompt": pa.types.is_string,
    "generated_code": pa.types.is_string,
    "test_passed": pa.types.is_boolean,
    "error_message": pa.types.is_string,
    "generation_time": pa.types.is_floating,
    "cyclomatic_complexity": pa.types.is_integer,
    "test_list": pa.types.is_string,
    "completion": pa.types.is_string,
    "error_type": pa.types.is_string,
    "n_tests_passed": pa.types.is_integer,
    "n_tests": pa.types.is_integer,
    "extraction_method": pa.types.is_string,
    "n_tests_trusted": pa.types.is_integer,
    "robust_test_passed": pa.types.is_boolean,
    "robust_error_message": pa.types.is_string,
    "legacy_test_passed": pa.types.is_boolean,
    "legacy_error_message": pa.types.is_string,
    "baseline_passed": pa.types.is_boolean,
}
METADATA_KEYS = (
    "creation_timestamp", "model_name", "model_type", "best_layers", "extraction_layers", "temperature",
    "validation_task_ids", "n_tasks_attempted", "n_tasks_included", "n_tasks_excluded",
    "exclusion_rate_percent", "excluded_task_ids", "n_total_samples", "stats", "hook_point",
    "prompt_style", "fidelity", "library_versions", "verdict", "verdicts", "n_tests", "n_tests_trusted",
    "completion_column", "replay_verify", "hook_point_explanation",
)


def strict_json(path):
    """Parse JSON, refusing NaN/Infinity (they break downstream readers)."""
    def refuse(name):
        raise ValueError(f"{path}: {name} in JSON")

    return json.loads(path.read_text(), parse_constant=refuse)


@pytest.fixture
def problems(problems_path):
    return pd.read_parquet(problems_path).set_index("task_id")


def make_generations(folder, problems, completions: dict[int, str], *, excluded=(), with_metadata=True, layers=None):
    """A generate-stage folder: generations.parquet (+ metadata, + activations metadata with ``layers``' block)."""
    folder.mkdir(parents=True, exist_ok=True)
    rows = []
    for task_id, completion in completions.items():
        p = problems.loc[task_id]
        rows.append(
            {
                "task_id": task_id,
                "prompt": build_prompt(p["text"], list(p["test_list"])),
                "completion": completion,
                "finish_reason": "stop",
                "n_prompt_tokens": 50,
                "n_completion_tokens": len(completion) // 4,
                "generation_time": 0.25 * (1 + task_id % 3),
            }
        )
    # Written in descending task id order: the dataset must come out ascending.
    columns = ["task_id", "prompt", "completion", "finish_reason", "n_prompt_tokens", "n_completion_tokens", "generation_time"]
    pd.DataFrame(rows[::-1], columns=columns).to_parquet(folder / "generations.parquet")
    if with_metadata:
        write_json(
            folder / GENERATIONS_METADATA_FILE,
            {
                "model": "google/gemma-2-2b-it",
                "prompt_style": "chat",
                "temperature": 0.0,
                "vllm_version": "0.0-test",
                "excluded_task_ids": list(excluded),
                "excluded": [{"task_id": t, "reason": "prompt too long"} for t in excluded],
                "complete": True,
            },
        )
        write_json(
            folder / "activations" / ACTIVATIONS_METADATA_FILE,
            {
                "model": "google/gemma-2-2b-it",
                "hook_point": "resid_post",
                "layers": [16, 19],
                **(layers or {}),
                "verify": {"n_tasks": 4, "max_rel_error": 1e-6, "fidelity": "exact"},
                "transformer_lens_version": "4.0-test",
            },
        )
    return folder / "generations.parquet"


def fenced(code: str) -> str:
    return f"Here is the solution:\n\n```python\n{code}\n```\n\nIt runs in linear time."


def config(generations, problems_path, out, **settings) -> EvaluateConfig:
    return EvaluateConfig(data_dir=out.parent / "data", generations_path=generations, problems_path=problems_path,
                          output_dir=out, timeout=5, **settings)


def evaluate(generations, problems_path, out, **settings):
    return run(config(generations, problems_path, out, **settings), progress=False)


def test_dataset_and_metadata_follow_the_contract(tmp_path, problems, problems_path, phase2_10_dir):
    ids = sorted(problems.index)
    a, b, c, d, e, f = ids[:6]
    completions = {
        a: fenced(problems.loc[a, "code"]),  # passes (legacy: the prose is a syntax error)
        b: fenced("def nothing():\n    return None"),  # runtime_error (tested name missing)
        c: "I am not able to solve this problem.",  # no code
        d: problems.loc[d, "code"] + "\n\nassert False, 'self-test the model wrote'\nprint('done')",  # passes
        367: problems.loc[367, "code"],  # needs test_setup_code (legacy: NameError)
        e: "```python\ndef f(:\n```",  # no parsable code
        f: f"```python\n{problems.loc[f, 'code']}\n```",  # passes under both verdicts
    }
    excluded = [ids[-1], ids[-2]]
    best = resolve_layers([phase2_10_dir], None).to_metadata()  # the block replay copies into its metadata
    out = tmp_path / "run"  # the pipeline's layout: generations, activations and the dataset in one folder
    generations = make_generations(out, problems, completions, excluded=excluded, layers=best)
    result = evaluate(generations, problems_path, out)

    # Parquet: exact column order and types, one row per task, ascending ids.
    table = pq.read_table(result.dataset_path)
    expected_order = [n for n, _ in CONTRACT_COLUMNS] + [n for n, _ in EXTRA_COLUMNS]
    assert table.column_names[: len(expected_order)] == expected_order
    assert table.column_names[len(expected_order):] == ["finish_reason", "n_prompt_tokens", "n_completion_tokens"]
    for name, check in CONTRACT_TYPES.items():
        assert check(table.schema.field(name).type), (name, table.schema.field(name).type)
    df = pd.read_parquet(result.dataset_path)
    assert df["task_id"].tolist() == sorted(completions)
    assert (df["temperature"] == 0.0).all()
    assert df["error_message"].isna().tolist() == df["test_passed"].tolist()
    assert df["error_type"].isna().tolist() == df["test_passed"].tolist()
    assert set(df["error_type"].dropna()) <= {t.value for t in ErrorType}
    rows = df.set_index("task_id")
    for task_id in completions:
        assert json.loads(rows.loc[task_id, "test_list"]) == list(problems.loc[task_id, "test_list"])
        assert rows.loc[task_id, "cyclomatic_complexity"] == problems.loc[task_id, "cyclomatic_complexity"]
        assert rows.loc[task_id, "prompt"] == build_prompt(problems.loc[task_id, "text"], list(problems.loc[task_id, "test_list"]))
        assert rows.loc[task_id, "completion"] == completions[task_id]
        assert rows.loc[task_id, "generation_time"] == 0.25 * (1 + task_id % 3)
    assert rows.loc[a, "test_passed"] and rows.loc[d, "test_passed"] and rows.loc[367, "test_passed"] and rows.loc[f, "test_passed"]
    assert "assert False" not in rows.loc[d, "generated_code"] and "print" not in rows.loc[d, "generated_code"]
    assert rows.loc[b, "error_type"] == "runtime_error" and "NameError" in rows.loc[b, "error_message"]
    for task_id in (c, e):
        assert rows.loc[task_id, "error_type"] == "syntax_error" and rows.loc[task_id, "generated_code"] == ""
        assert rows.loc[task_id, "extraction_method"] == "none" and rows.loc[task_id, "n_tests_passed"] == 0
    assert (rows["n_tests"] == [len(problems.loc[t, "test_list"]) for t in rows.index]).all()

    # Both verdicts (issue 12): robust fills test_passed by default; legacy runs the whole
    # cleaned completion without test_setup_code; baseline_passed repeats test_passed.
    assert df["test_passed"].tolist() == df["robust_test_passed"].tolist() == df["baseline_passed"].tolist()
    assert df["error_message"].tolist() == df["robust_error_message"].tolist()
    assert df["legacy_test_passed"].isna().sum() == 0 and df["legacy_error_message"].isna().tolist() == df["legacy_test_passed"].tolist()
    assert rows.loc[f, "legacy_test_passed"]  # a bare fenced block: the fences are dropped
    assert rows.loc[a, "legacy_error_message"].startswith("the code failed: SyntaxError")  # prose runs too
    assert rows.loc[d, "legacy_error_message"] == "the code failed: AssertionError: self-test the model wrote"
    assert "NameError" in rows.loc[367, "legacy_error_message"]
    assert df["legacy_test_passed"].sum() == 1
    # Every validation test has the form `assert EXPR == LITERAL`: all decided in the parent.
    assert (rows["n_tests_trusted"] == rows["n_tests"]).all()

    # metadata.json: every contract key, consistent with the table.
    meta = strict_json(result.metadata_path)
    assert all(key in meta for key in METADATA_KEYS), [k for k in METADATA_KEYS if k not in meta]
    assert meta["model_name"] == "google/gemma-2-2b-it" and meta["model_type"] == "instruction-tuned"
    assert meta["best_layers"] == {"correct": 16, "incorrect": 19, "correct_feature_idx": 14439, "incorrect_feature_idx": 5441}
    assert meta["extraction_layers"] == [16, 19] and meta["temperature"] == 0.0
    assert meta["best_layers_source"] == str(phase2_10_dir / "top_20_features.json")
    # The attempted tasks (issue 18), not every problem.
    assert meta["validation_task_ids"] == sorted([*completions, *excluded])
    assert (meta["n_tasks_attempted"], meta["n_tasks_included"], meta["n_tasks_excluded"]) == (9, 7, 2)
    assert meta["exclusion_rate_percent"] == pytest.approx(200 / 9)
    assert meta["excluded_task_ids"] == sorted(excluded) and meta["n_total_samples"] == 7
    assert meta["excluded"][0]["reason"] == "prompt too long"
    stats = meta["stats"]
    assert (stats["n_correct"], stats["n_incorrect"]) == (4, 3) and stats["pass_rate"] == pytest.approx(4 / 7)
    assert stats["avg_generation_time"] == pytest.approx(df["generation_time"].mean())
    assert stats["error_types"]["syntax_error"] == 2 and stats["error_types"]["runtime_error"] == 1
    assert (meta["hook_point"], meta["prompt_style"], meta["fidelity"]) == ("resid_post", "chat", "exact")
    assert meta["library_versions"]["vllm"] == "0.0-test" and meta["library_versions"]["transformer_lens"] == "4.0-test"
    assert meta["library_versions"]["bubblewrap"] and meta["sandbox"]["kind"] == "bwrap" and meta["sandbox"]["isolated"]
    assert meta["sandbox"]["limits"]["timeout_s"] == 5
    assert meta["sandbox"]["value_limits"] == {"max_bytes": 64 << 10, "max_depth": 48}
    assert meta["generations_sha256"] and meta["problems_sha256"]
    assert meta["verdict"] == "robust" and meta["completion_column"] == "completion"
    assert meta["verdicts"] == {
        "robust": {"n_correct": 4, "n_incorrect": 3, "pass_rate": pytest.approx(4 / 7)},
        "legacy": {"n_correct": 1, "n_incorrect": 6, "pass_rate": pytest.approx(1 / 7)},
    }
    assert meta["n_tests"] == meta["n_tests_trusted"] == int(df["n_tests"].sum())
    assert meta["replay_verify"] == {"n_tasks": 4, "max_rel_error": 1e-6, "fidelity": "exact"}

    # phase_output.json (issue 18): the files of this folder, and the folders read.
    manifest = strict_json(out / "phase_output.json")
    assert manifest["phase"] == "7.3" and manifest["config"] == {"model_name": "google/gemma-2-2b-it", "dataset_name": "mbpp"}
    assert manifest["outputs"] == {"primary": "dataset_instruct_temp_0_0.parquet", "metadata": "metadata.json",
                                   "activations": "activations", "generations": "generations.parquet"}
    assert all((out / name).exists() for name in manifest["outputs"].values())
    assert manifest["dependencies"] == {"0.1": str(problems_path.parent), "2.10": str(phase2_10_dir)}


def test_zero_passes_give_zero_rates_not_nan(tmp_path, problems, problems_path):
    ids = sorted(problems.index)[:3]
    generations = make_generations(tmp_path / "run", problems, {t: "def wrong():\n    pass" for t in ids})
    result = evaluate(generations, problems_path, tmp_path / "out")
    stats = strict_json(result.metadata_path)["stats"]
    assert stats["n_correct"] == 0 and stats["pass_rate"] == 0.0 and stats["n_incorrect"] == 3


def test_any_table_with_task_id_and_completion_is_scored(tmp_path, problems, problems_path):
    ids = sorted(problems.index)[:2]
    table = tmp_path / "elsewhere" / "outputs.jsonl"
    table.parent.mkdir()
    pd.DataFrame({"task_id": ids, "completion": [problems.loc[ids[0], "code"], "nope"]}).to_json(
        table, orient="records", lines=True
    )
    out = tmp_path / "out"
    result = evaluate(table, problems_path, out)
    df = result.dataset
    assert df["test_passed"].tolist() == [True, False]
    assert df["prompt"].iloc[0] == build_prompt(problems.loc[ids[0], "text"], list(problems.loc[ids[0], "test_list"]))
    assert df["generation_time"].isna().all() and "finish_reason" not in df.columns
    meta = strict_json(result.metadata_path)
    assert meta["stats"]["avg_generation_time"] is None and meta["model_name"] is None
    assert (meta["n_tasks_excluded"], meta["exclusion_rate_percent"], meta["hook_point"]) == (0, 0.0, None)
    assert meta["extraction_layers"] is None  # no replay metadata beside the table
    # The stage's outputs and its record, nothing else (no checkpoint left behind).
    assert sorted(p.name for p in out.iterdir()) == [".records", "dataset_instruct_temp_0_0.parquet", "metadata.json",
                                                     "phase_output.json"]
    manifest = strict_json(out / "phase_output.json")
    assert manifest["outputs"] == {"primary": "dataset_instruct_temp_0_0.parquet", "metadata": "metadata.json"}
    assert manifest["dependencies"] == {"0.1": str(problems_path.parent)}


def test_the_record_covers_the_outputs_and_the_companion_metadata(tmp_path, problems, problems_path):
    ids = sorted(problems.index)[:1]
    generations = make_generations(tmp_path / "run", problems, {ids[0]: "x"})
    settings = config(generations, problems_path, tmp_path / "out", workers=1)
    run(settings, progress=False)
    assert read_record(settings)["complete"] and is_current(settings)
    assert is_current(config(generations, problems_path, tmp_path / "out", workers=2))  # workers: not identity
    assert not is_current(config(generations, problems_path, tmp_path / "out", verdict="legacy"))
    act = generations.parent / "activations" / ACTIVATIONS_METADATA_FILE
    write_json(act, {**json.loads(act.read_text()), "hook_point": "resid_pre"})
    assert not is_current(settings)  # the copied replay metadata changed


def test_base_table_with_another_completion_column_no_replay_metadata_and_no_sae_files(tmp_path, problems, problems_path):
    # The earlier phases' parquet shape (Phase 3.5: task_id, generated_code, test_list, ...):
    # scored under --verdict legacy as a base model, with no analysis files anywhere.
    ids = sorted(problems.index)[:2]
    table = tmp_path / "phase3_5" / "dataset_temp_0_0.parquet"
    table.parent.mkdir()
    ref = problems.loc[ids[0], "code"]
    pd.DataFrame({
        "task_id": ids,
        "generated_code": [f"```python\n{ref}\n```", "def nope():\n    pass"],
        "test_list": [list(problems.loc[t, "test_list"]) for t in ids],
        "test_passed": [False, True],  # the earlier verdicts: ignored
    }).to_parquet(table)
    out = tmp_path / "out"
    result = evaluate(table, problems_path, out, verdict="legacy", completion_column="generated_code", model_type="base")
    assert result.dataset_path == out / "dataset_base_temp_0_0.parquet" and result.dataset_path.is_file()
    assert not (out / "dataset_instruct_temp_0_0.parquet").exists()
    df = pd.read_parquet(result.dataset_path)
    assert df["completion"].iloc[0].startswith("```python") and df["test_passed"].tolist() == [True, False]
    assert df["test_passed"].tolist() == df["legacy_test_passed"].tolist() == df["baseline_passed"].tolist()
    assert df["error_message"].tolist() == df["legacy_error_message"].tolist()
    meta = strict_json(result.metadata_path)
    assert (meta["model_type"], meta["verdict"], meta["completion_column"]) == ("base", "legacy", "generated_code")
    assert meta["extraction_layers"] is None and meta["best_layers_source"] is None
    assert meta["best_layers"] == dict.fromkeys(("correct", "incorrect", "correct_feature_idx", "incorrect_feature_idx"))
    assert meta["stats"]["n_correct"] == meta["verdicts"]["legacy"]["n_correct"] == 1


@pytest.mark.parametrize(
    ("frame", "message"),
    [
        (pd.DataFrame({"task_id": [2], "text": ["x"]}), "missing column"),
        (pd.DataFrame({"task_id": [999999], "completion": ["x"]}), "not in"),
        (pd.DataFrame({"task_id": [2, 2], "completion": ["x", "y"]}), "more than once"),
    ],
)
def test_bad_generations_are_input_errors(tmp_path, problems_path, frame, message):
    path = tmp_path / "bad.parquet"
    if "completion" in frame and 2 in set(frame["task_id"]):
        frame = frame.assign(task_id=sorted(pd.read_parquet(problems_path)["task_id"])[0])
    frame.to_parquet(path)
    with pytest.raises(InputError, match=message):
        evaluate(path, problems_path, tmp_path / "out")


def test_incomplete_generations_are_refused(tmp_path, problems, problems_path):
    generations = make_generations(tmp_path / "run", problems, {sorted(problems.index)[0]: "x"})
    meta_path = generations.parent / GENERATIONS_METADATA_FILE
    meta = json.loads(meta_path.read_text())
    write_json(meta_path, {**meta, "complete": False})
    with pytest.raises(InputError, match="not complete"):
        evaluate(generations, problems_path, tmp_path / "out")


def test_metadata_numbers_are_finite(tmp_path, problems, problems_path):
    generations = make_generations(tmp_path / "run", problems, {}, with_metadata=False)
    result = evaluate(generations, problems_path, tmp_path / "out")
    stats = strict_json(result.metadata_path)["stats"]
    assert stats["pass_rate"] == 0.0 and stats["avg_generation_time"] is None and not math.isnan(stats["n_correct"])
    assert len(pd.read_parquet(result.dataset_path)) == 0
