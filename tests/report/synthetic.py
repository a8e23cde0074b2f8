"""Synthetic pipeline outputs for report tests, following the stage contracts (BRIEF, issue 6).

``write_outputs`` builds a data folder with the evaluated dataset, its metadata, the
generations and their metadata, and per-task activations. At ``signal_layer`` the
last-prompt-token activation of passed tasks is shifted along one direction (a planted
signal); at every other layer activations are pure noise.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from artifacts.files import write_json, write_npz, write_parquet
from artifacts.layout import activation_file_name

ERROR_TYPES = ("assertion_failed", "runtime_error", "syntax_error", "timeout")


@dataclass(frozen=True)
class Synthetic:
    """Where the synthetic files are and what was planted."""

    data_dir: Path
    phase_dir: Path
    dataset: pd.DataFrame
    layers: tuple[int, ...]
    signal_layer: int


def make_dataset(n_tasks: int, passed: np.ndarray, rng: np.random.Generator, *, with_verdicts: bool = False) -> pd.DataFrame:
    """The evaluate contract: typed columns first, extras after, ascending task_id.

    With ``with_verdicts`` the robust and legacy verdict columns too: robust is ``test_passed``;
    legacy fails every third passed task and passes every fifth failed one.
    """
    task_ids = np.arange(11, 11 + n_tasks, dtype=np.int64)
    cc = np.array([(1, 1, 2, 3, 4, 6)[i % 6] for i in range(n_tasks)])  # all three groups
    n_tests = np.full(n_tasks, 3)
    df = pd.DataFrame(
        {
            "task_id": task_ids,
            "temperature": 0.0,
            "prompt": [f"Write a function number {t}.\n\nassert f({t}) == {t}\n\n# Solution:" for t in task_ids],
            "generated_code": [f"def f(x):\n    return x + {0 if p else 1}\n" for p in passed],
            "test_passed": passed.astype(bool),
            "error_message": [None if p else "AssertionError" for p in passed],
            "generation_time": rng.uniform(0.5, 2.0, n_tasks),
            "cyclomatic_complexity": cc.astype(np.int64),
            "test_list": [json.dumps([f"assert f({t}) == {t}"]) for t in task_ids],
            "completion": ["```python\n" + "x" * int(rng.integers(20, 400)) + "\n```" for _ in task_ids],
            "error_type": [None if p else ERROR_TYPES[i % len(ERROR_TYPES)] for i, p in enumerate(passed)],
            "n_tests_passed": np.where(passed, n_tests, 0),
            "n_tests": n_tests,
        }
    )
    if with_verdicts:
        rank = np.arange(n_tasks)
        legacy = np.where(passed, rank % 3 != 0, rank % 5 == 0)
        df = df.assign(robust_test_passed=passed.astype(bool), legacy_test_passed=legacy.astype(bool),
                       baseline_passed=passed.astype(bool))
    return df


def write_outputs(
    data_dir: Path,
    *,
    n_tasks: int = 60,
    n_passed: int = 20,
    d_model: int = 32,
    layers: tuple[int, ...] = (16, 19),
    signal_layer: int = 16,
    shift: float = 3.0,
    seed: int = 0,
    with_activations: bool = True,
    with_generations: bool = True,
    with_verdicts: bool = False,
) -> Synthetic:
    """Write every file ``report`` reads under ``data_dir/phase7_3`` (see module docstring)."""
    rng = np.random.default_rng(seed)
    passed = np.zeros(n_tasks, dtype=bool)
    passed[rng.choice(n_tasks, size=n_passed, replace=False)] = True
    dataset = make_dataset(n_tasks, passed, rng, with_verdicts=with_verdicts)
    phase = data_dir / "phase7_3"
    write_parquet(phase / "dataset_instruct_temp_0_0.parquet", dataset)
    metadata = _dataset_metadata(dataset, layers)
    write_json(phase / "metadata.json", {**metadata, "verdict": "robust"} if with_verdicts else metadata)
    if with_generations:
        _write_generations(phase, dataset, rng)
    if with_activations:
        _write_activations(phase / "activations", dataset, layers, signal_layer, d_model, shift, rng)
    return Synthetic(data_dir, phase, dataset, tuple(layers), signal_layer)


def _dataset_metadata(dataset: pd.DataFrame, layers: tuple[int, ...]) -> dict:
    n = len(dataset)
    n_correct = int(dataset["test_passed"].sum())
    return {
        "creation_timestamp": "2025-01-01T00:00:00+00:00",
        "model_name": "google/gemma-2-2b-it",
        "model_type": "instruction_tuned",
        "best_layers": {
            "correct": layers[0], "incorrect": layers[-1], "correct_feature_idx": 1, "incorrect_feature_idx": 2
        },
        "extraction_layers": list(layers),
        "temperature": 0.0,
        "validation_task_ids": dataset["task_id"].tolist(),
        "n_tasks_attempted": n,
        "n_tasks_included": n,
        "n_tasks_excluded": 0,
        "exclusion_rate_percent": 0.0,
        "excluded_task_ids": [],
        "n_total_samples": n,
        "stats": {"n_correct": n_correct, "n_incorrect": n - n_correct, "pass_rate": n_correct / n,
                  "avg_generation_time": float(dataset["generation_time"].mean())},
        "hook_point": "resid_post",
        "prompt_style": "chat",
        "evaluation_wall_time_s": 3.5,
    }


def _write_generations(phase: Path, dataset: pd.DataFrame, rng: np.random.Generator) -> None:
    n = len(dataset)
    n_prompt = rng.integers(30, 80, n)
    n_completion = np.where(dataset["test_passed"], rng.integers(40, 120, n), rng.integers(60, 256, n))
    gens = pd.DataFrame(
        {
            "task_id": dataset["task_id"],
            "prompt": dataset["prompt"],
            "prompt_token_ids": [np.arange(k, dtype=np.int32) for k in n_prompt],
            "completion_token_ids": [np.arange(k, dtype=np.int32) for k in n_completion],
            "completion": dataset["completion"],
            "finish_reason": np.where(n_completion >= 250, "length", "stop"),
            "n_prompt_tokens": n_prompt,
            "n_completion_tokens": n_completion,
            "generation_time": dataset["generation_time"],
        }
    )
    write_parquet(phase / "generations.parquet", gens)
    total = int(n_completion.sum())
    write_json(
        phase / "generations_metadata.json",
        {"model": "google/gemma-2-2b-it", "n_tasks": n, "wall_time_s": 12.0, "n_completion_tokens": total,
         "tokens_per_s": total / 12.0, "dtype": "bfloat16", "device": "cuda", "max_new_tokens": 256,
         "excluded_task_ids": [], "excluded": []},
    )


def _write_activations(
    folder: Path,
    dataset: pd.DataFrame,
    layers: tuple[int, ...],
    signal_layer: int,
    d_model: int,
    shift: float,
    rng: np.random.Generator,
) -> None:
    direction = rng.normal(size=d_model)
    direction /= np.linalg.norm(direction)
    for layer in layers:
        for task_id, passed in zip(dataset["task_id"], dataset["test_passed"]):
            last = rng.normal(size=d_model) + 10.0  # an offset so norms are not centred on 0
            if layer == signal_layer and passed:
                last = last + shift * direction
            n_prompt, n_completion = 5, 3
            sequence = rng.normal(size=(n_prompt + n_completion, d_model)).astype(np.float16)
            sequence[n_prompt - 1] = last
            write_npz(
                folder / "task_activations" / activation_file_name(task_id, layer),
                arr_0=last.astype(np.float32)[None, :],
                sequence=sequence,
                token_ids=np.arange(n_prompt + n_completion, dtype=np.int32),
                n_prompt_tokens=np.int64(n_prompt),
            )
    write_json(
        folder / "activations_metadata.json",
        {"model": "google/gemma-2-2b-it", "dtype": "bfloat16", "device": "cuda", "hook_point": "resid_post",
         "layers": list(layers), "d_model": d_model, "n_tasks": len(dataset), "wall_time_s": 4.0,
         "tokens_per_s": 2000.0, "verify": {"n_tasks": 5, "max_rel_error": 0.0012, "fidelity": 0.9995}},
    )
