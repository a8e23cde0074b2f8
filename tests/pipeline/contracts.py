"""Checks of every output file against the contracts written in the issues and data/README.md.

Written from the contracts themselves, not from the code's constants, so that a change of
a column name or type in the code fails here.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd

from artifacts.layout import activation_file_name

PROBLEM_COLUMNS = ["task_id", "text", "code", "test_list", "test_setup_code", "challenge_test_list",
                   "cyclomatic_complexity"]
GENERATION_COLUMNS = ["task_id", "prompt", "prompt_token_ids", "completion_token_ids", "completion",
                      "finish_reason", "n_prompt_tokens", "n_completion_tokens", "generation_time"]
GENERATION_METADATA_KEYS = ["model", "dtype", "vllm_version", "device", "prompt_style", "max_new_tokens", "seed",
                            "excluded_task_ids", "wall_time_s", "tokens_per_s"]
ACTIVATION_METADATA_KEYS = ["model", "dtype", "device", "hook_point", "layers", "d_model", "n_tasks", "wall_time_s",
                            "tokens_per_s"]
DATASET_COLUMNS = [("task_id", "int64"), ("temperature", "float64"), ("prompt", "object"),
                   ("generated_code", "object"), ("test_passed", "bool"), ("error_message", "object"),
                   ("generation_time", "float64"), ("cyclomatic_complexity", "int64"), ("test_list", "object")]
DATASET_EXTRAS = ["completion", "error_type", "n_tests_passed", "n_tests",
                  # issue 12: the earlier tool's verdict beside ours, and the later code's column name
                  "legacy_test_passed", "legacy_error_message", "baseline_passed",
                  # issue 15: tests decided in the trusted parent
                  "n_tests_trusted"]
# issue 12: every activation file says which hook it holds and keeps both sites' last-prompt vectors
NPZ_KEYS = {"arr_0", "resid_pre_last", "resid_post_last", "sequence", "token_ids", "n_prompt_tokens", "hook_name"}
ERROR_TYPES = {"syntax_error", "assertion_failed", "runtime_error", "timeout", "memory", "no_result"}
METADATA_KEYS = ["creation_timestamp", "model_name", "model_type", "best_layers", "extraction_layers", "temperature",
                 "validation_task_ids", "n_tasks_attempted", "n_tasks_included", "n_tasks_excluded",
                 "exclusion_rate_percent", "excluded_task_ids", "n_total_samples", "stats", "hook_point",
                 "prompt_style"]


def check_all_contracts(data_dir: Path, *, n_tasks: int, layers: list[int], model: str) -> None:
    """Assert every pipeline output under ``data_dir`` follows its contract."""
    problems = pd.read_parquet(data_dir / "phase0_1" / "validation_mbpp.parquet")
    assert list(problems.columns) == PROBLEM_COLUMNS
    out = data_dir / "phase7_3"
    gens = check_generations(out, n_tasks=n_tasks, model=model)
    check_activations(out, gens, layers=layers)
    check_dataset(out, gens, problems)
    check_report(out / "report", layers=layers)


# The report's plots, by name; each a real picture (not an empty canvas or a torn file).
REPORT_PLOTS = ["pass_rate_by_complexity.png", "completion_length.png"]
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def check_report(report: Path, *, layers: list[int]) -> None:
    import matplotlib.image

    assert (report / "report.md").is_file()
    for name in REPORT_PLOTS + [f"layer_{layer:02d}_separation.png" for layer in layers]:
        path = report / name
        assert path.read_bytes()[:8] == PNG_SIGNATURE, name
        pixels = matplotlib.image.imread(path)  # decodes every row: a truncated file fails here
        height, width = pixels.shape[:2]
        assert 400 <= width <= 2500 and 250 <= height <= 2000, (name, width, height)
        assert pixels.std() > 0.01, f"{name} is a blank canvas"


def check_generations(out: Path, *, n_tasks: int, model: str) -> pd.DataFrame:
    gens = pd.read_parquet(out / "generations.parquet")
    assert list(gens.columns) == GENERATION_COLUMNS
    assert len(gens) == n_tasks and gens["task_id"].is_monotonic_increasing
    for row in gens.itertuples():
        assert len(row.prompt_token_ids) == row.n_prompt_tokens
        assert len(row.completion_token_ids) == row.n_completion_tokens > 0
        assert np.asarray(row.prompt_token_ids).dtype == np.int32
        assert row.finish_reason in {"stop", "length"}
        assert row.generation_time >= 0
    meta = json.loads((out / "generations_metadata.json").read_text())
    for key in GENERATION_METADATA_KEYS:
        assert key in meta, key
    assert meta["model"] == model
    return gens


def check_activations(out: Path, gens: pd.DataFrame, *, layers: list[int]) -> None:
    folder = out / "activations" / "task_activations"
    meta = json.loads((out / "activations" / "activations_metadata.json").read_text())
    for key in ACTIVATION_METADATA_KEYS:
        assert key in meta, key
    assert meta["layers"] == layers
    d_model = meta["d_model"]
    for row in gens.itertuples():
        ids = np.concatenate([row.prompt_token_ids, row.completion_token_ids]).astype(np.int32)
        for layer in layers:
            with np.load(folder / activation_file_name(row.task_id, layer)) as z:
                assert set(z.files) == NPZ_KEYS
                assert str(z["hook_name"]) == f"blocks.{layer}.hook_{meta['hook_point']}"
                np.testing.assert_array_equal(z["arr_0"], z[f"{meta['hook_point']}_last"])
                assert z["arr_0"].dtype == np.float32 and z["arr_0"].shape == (1, d_model)
                assert z["sequence"].dtype == np.float16 and z["sequence"].shape == (len(ids), d_model)
                np.testing.assert_array_equal(z["token_ids"], ids)
                assert int(z["n_prompt_tokens"]) == row.n_prompt_tokens
                last = z["sequence"][row.n_prompt_tokens - 1].astype(np.float32)
                # float16 storage: relative rounding 2**-11, bounded at 2**-10 (tests/replay/tolerances.py);
                # values under float16's smallest normal (2**-14) are compared absolutely.
                np.testing.assert_allclose(last, z["arr_0"][0], rtol=2.0**-10, atol=2.0**-14)


def check_dataset(out: Path, gens: pd.DataFrame, problems: pd.DataFrame) -> None:
    ds = pd.read_parquet(out / "dataset_instruct_temp_0_0.parquet")
    names = [n for n, _ in DATASET_COLUMNS]
    assert list(ds.columns[: len(names)]) == names
    for name, dtype in DATASET_COLUMNS:
        if dtype == "object":  # text columns: pandas 3 reads them as its "str" dtype
            assert all(isinstance(v, str) or pd.isna(v) for v in ds[name]), name
        else:
            assert str(ds[name].dtype) == dtype, name
    for name in DATASET_EXTRAS:
        assert name in ds.columns, name
    assert (ds["baseline_passed"] == ds["test_passed"]).all()
    assert ds["task_id"].tolist() == gens["task_id"].tolist()
    assert (ds["temperature"] == 0.0).all()
    assert ds["prompt"].tolist() == gens["prompt"].tolist()
    assert ds["completion"].tolist() == gens["completion"].tolist()
    by_id = problems.set_index("task_id")
    for row in ds.itertuples():
        assert json.loads(row.test_list) == list(by_id.loc[row.task_id, "test_list"])
        assert row.cyclomatic_complexity == by_id.loc[row.task_id, "cyclomatic_complexity"]
        if row.test_passed:
            assert pd.isna(row.error_message) and pd.isna(row.error_type)
        else:
            assert row.error_type in ERROR_TYPES and row.error_message
    meta = json.loads((out / "metadata.json").read_text())
    for key in METADATA_KEYS:
        assert key in meta, key
    # The earlier tool's spelling; the attempted tasks (included + excluded), not the whole split.
    assert meta["model_type"] == "instruction-tuned" and meta["temperature"] == 0.0
    attempted = sorted([*gens["task_id"].tolist(), *meta["excluded_task_ids"]])
    assert meta["validation_task_ids"] == attempted and len(attempted) == meta["n_tasks_attempted"]
    check_phase_output(out, data_dir=out.parent)
    stats = meta["stats"]
    assert stats["n_correct"] == int(ds["test_passed"].sum())
    assert stats["n_correct"] + stats["n_incorrect"] == len(ds) == meta["n_tasks_included"]
    assert stats["pass_rate"] == stats["n_correct"] / len(ds)


def check_phase_output(out: Path, *, data_dir: Path) -> None:
    """``phase_output.json``: how the newer research code (phase_discovery) finds this phase's files."""
    manifest = json.loads((out / "phase_output.json").read_text())
    assert set(manifest) == {"phase", "created_at", "config", "outputs", "dependencies"}
    assert manifest["phase"] == "7.3" and manifest["config"]["dataset_name"] == "mbpp"
    assert manifest["config"]["model_name"]
    outputs = manifest["outputs"]
    assert outputs["primary"] == "dataset_instruct_temp_0_0.parquet" and outputs["metadata"] == "metadata.json"
    assert outputs["activations"] == "activations"
    assert all((out / name).exists() for name in outputs.values()), outputs
    assert Path(manifest["dependencies"]["0.1"]).resolve() == (data_dir / "phase0_1").resolve()
    assert (Path(manifest["dependencies"]["2.10"]) / "top_20_features.json").is_file()
