"""Score generations against their MBPP tests and write the downstream dataset (front door).

Reads any table with ``task_id`` and ``completion`` columns (parquet, JSON lines, JSON or CSV;
other columns optional) and the problems parquet; extracts the code of each completion,
runs it in the sandbox, and writes atomically:

``dataset_instruct_temp_0_0.parquet``: one row per task, ascending ``task_id``, the contract
columns first (:data:`CONTRACT_COLUMNS`), then :data:`EXTRA_COLUMNS` and the generation
columns found (:data:`PASSTHROUGH_COLUMNS`).

``metadata.json``: counts, stats, best layers, model and run provenance (see data/README.md).

Companion files are read from the generations' folder when present:
``generations_metadata.json`` (model, prompt style, excluded tasks, vLLM version) and
``activations/activations_metadata.json`` (hook point, layers, replay fidelity).
"""

from __future__ import annotations

import json
import math
import platform
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from importlib import metadata as importlib_metadata
from pathlib import Path

import numpy as np
import pandas as pd

from artifacts.errors import InputError
from artifacts.files import read_json, sha256_file, write_json, write_parquet
from artifacts.layout import (
    ACTIVATIONS_METADATA_FILE,
    ACTIVATIONS_SUBDIR,
    DATASET_FILE,
    DATASET_METADATA_FILE,
    GENERATIONS_METADATA_FILE,
)
from evaluate.batch import run_programs
from evaluate.extract import Extraction, extract_code
from evaluate.outcomes import ErrorType, ExecutionResult
from evaluate.sandbox import Limits, Program, Sandbox, SandboxKind
from features.best_layers import BestLayers, resolve_layers
from problems.prompts import build_prompt
from problems.split import read_problems

TEMPERATURE = 0.0  # greedy decoding: the dataset's name says so
MODEL_TYPE = "instruction_tuned"
CHECKPOINT_FILE = ".evaluate_checkpoint.jsonl"
# (name, pandas dtype) of the contract columns, in order. "object" columns hold str or None.
CONTRACT_COLUMNS: tuple[tuple[str, str], ...] = (
    ("task_id", "int64"),
    ("temperature", "float64"),
    ("prompt", "object"),
    ("generated_code", "object"),
    ("test_passed", "bool"),
    ("error_message", "object"),
    ("generation_time", "float64"),
    ("cyclomatic_complexity", "int64"),
    ("test_list", "object"),
)
EXTRA_COLUMNS: tuple[tuple[str, str], ...] = (
    ("completion", "object"),
    ("error_type", "object"),
    ("n_tests_passed", "int64"),
    ("n_tests", "int64"),
    ("extraction_method", "object"),
)
# Copied, with their own types, from the generations table when present (they help explain failures).
PASSTHROUGH_COLUMNS: tuple[str, ...] = ("finish_reason", "n_prompt_tokens", "n_completion_tokens")
NO_CODE_MESSAGE = "no parsable Python code in the completion"


@dataclass(frozen=True)
class EvaluationResult:
    """What :func:`evaluate_generations` wrote."""

    dataset: pd.DataFrame
    dataset_path: Path
    metadata_path: Path
    metadata: dict


def evaluate_generations(
    *,
    generations_path: str | Path,
    problems_path: str | Path,
    output_dir: str | Path,
    layer_folders: Sequence[str | Path],
    layers: str | None = None,
    sandbox: SandboxKind | str = SandboxKind.BWRAP,
    limits: Limits = Limits(),
    workers: int | None = None,
    progress: bool = True,
) -> EvaluationResult:
    """Evaluate every completion and write the dataset and its metadata to ``output_dir``.

    Args:
        generations_path: table with ``task_id`` and ``completion`` (``prompt``,
            ``generation_time``, ``finish_reason``, token counts optional).
        problems_path: the problems parquet (``python cli.py split``).
        output_dir: destination folder (created when missing).
        layer_folders: folders searched for the SAE analysis' best layers, in order.
        layers: ``"16,19"`` to override the extraction layers (default: the replayed
            layers from ``activations_metadata.json``, else the analysis' best layers).
        sandbox: ``bwrap`` (isolated) or ``process`` (resource limits only).
        limits: limits of every program.
        workers: programs run in parallel [default: CPU count].
        progress: show a progress bar.

    Raises:
        InputError: a missing or malformed input, unknown task ids, no best layers, or a
            sandbox that cannot run here.
    """
    started = time.monotonic()
    generations_path, problems_path, output_dir = Path(generations_path), Path(problems_path), Path(output_dir)
    generations = read_generations(generations_path)
    problems = read_problems(problems_path)
    gen_meta = _optional_json(generations_path.parent / GENERATIONS_METADATA_FILE)
    act_meta = _optional_json(generations_path.parent / ACTIVATIONS_SUBDIR / ACTIVATIONS_METADATA_FILE)
    if gen_meta and gen_meta.get("complete") is False:
        raise InputError(
            f"{generations_path.parent / GENERATIONS_METADATA_FILE}: generation is not complete; "
            "rerun `python cli.py generate` to finish it"
        )
    best = _best_layers(layer_folders, layers, act_meta)
    excluded_ids = _excluded_ids(gen_meta, generations_path)
    rows = join_problems(generations, problems, generations_path=generations_path, problems_path=problems_path)
    overlap = sorted(set(rows["task_id"]) & set(excluded_ids))
    if overlap:
        raise InputError(f"{generations_path}: task id(s) {overlap[:10]} are both generated and listed as excluded")

    box = Sandbox(sandbox, limits=limits)
    box.check()
    extractions = {
        int(r.task_id): extract_code(r.completion, tests=list(r.test_list), setup_code=r.test_setup_code)
        for r in rows.itertuples()
    }
    programs = {
        int(r.task_id): Program(extractions[int(r.task_id)].code, tuple(r.test_list), r.test_setup_code)
        for r in rows.itertuples()
        if extractions[int(r.task_id)].code
    }
    output_dir.mkdir(parents=True, exist_ok=True)
    checkpoint = output_dir / CHECKPOINT_FILE
    results = run_programs(programs, sandbox=box, workers=workers, checkpoint=checkpoint, progress=progress)
    dataset = build_dataset(rows, extractions, results)

    dataset_path = output_dir / DATASET_FILE
    metadata_path = output_dir / DATASET_METADATA_FILE
    metadata = build_metadata(
        dataset,
        problems=problems,
        best_layers=best.to_metadata(),
        excluded_ids=excluded_ids,
        gen_meta=gen_meta,
        act_meta=act_meta,
        sandbox=box.describe(),
        inputs={
            "generations_file": str(generations_path),
            "generations_sha256": sha256_file(generations_path),
            "problems_file": str(problems_path),
            "problems_sha256": sha256_file(problems_path),
        },
        wall_time_s=time.monotonic() - started,
    )
    write_parquet(dataset_path, dataset)
    write_json(metadata_path, metadata)
    checkpoint.unlink(missing_ok=True)  # the dataset holds every result now
    return EvaluationResult(dataset, dataset_path, metadata_path, metadata)


def read_generations(path: Path) -> pd.DataFrame:
    """A table with at least ``task_id`` and ``completion``, one row per task."""
    if not path.is_file():
        raise InputError(f"{path}: generations file not found (run `python cli.py generate` or pass --generations)")
    suffix = path.suffix.lower()
    try:
        if suffix == ".parquet":
            df = pd.read_parquet(path)
        elif suffix == ".jsonl":
            df = pd.read_json(path, lines=True)
        elif suffix == ".json":
            df = pd.read_json(path)
        elif suffix == ".csv":
            df = pd.read_csv(path, keep_default_na=False)
        else:
            raise InputError(f"{path}: unknown table format {suffix!r}; use .parquet, .jsonl, .json or .csv")
    except (ValueError, OSError) as exc:
        raise InputError(f"{path}: cannot read the table ({exc})") from exc
    missing = [c for c in ("task_id", "completion") if c not in df.columns]
    if missing:
        raise InputError(f"{path}: missing column(s) {', '.join(missing)}; need task_id and completion")
    try:
        df["task_id"] = df["task_id"].astype("int64")
    except (ValueError, TypeError) as exc:
        raise InputError(f"{path}: task_id must be integers ({exc})") from exc
    dup = df.loc[df["task_id"].duplicated(), "task_id"].tolist()
    if dup:
        raise InputError(f"{path}: task id(s) {sorted(set(dup))[:10]} appear more than once; expected one row per task")
    return df


def join_problems(
    generations: pd.DataFrame, problems: pd.DataFrame, *, generations_path: Path, problems_path: Path
) -> pd.DataFrame:
    """Generations with their problem's tests, setup code, complexity and prompt, by task id."""
    unknown = sorted(set(generations["task_id"]) - set(problems["task_id"]))
    if unknown:
        raise InputError(f"{generations_path}: task id(s) {unknown[:10]} are not in {problems_path}")
    keep = ["task_id", "text", "test_list", "test_setup_code", "cyclomatic_complexity"]
    rows = generations.merge(problems[keep], on="task_id", how="left", validate="one_to_one")
    rows["test_list"] = rows["test_list"].map(lambda tests: [str(t) for t in tests])
    rows["test_setup_code"] = rows["test_setup_code"].fillna("").astype(str)
    rows["completion"] = rows["completion"].map(lambda c: c if isinstance(c, str) else "")
    # A foreign table may lack prompts: use the raw prompt of the problem.
    raw_prompts = [build_prompt(t, tests) for t, tests in zip(rows["text"], rows["test_list"])]
    given = rows["prompt"] if "prompt" in rows.columns else pd.Series([None] * len(rows))
    rows["prompt"] = [p if isinstance(p, str) else raw for p, raw in zip(given, raw_prompts)]
    return rows.sort_values("task_id", ignore_index=True)


def build_dataset(
    rows: pd.DataFrame,
    extractions: dict[int, Extraction],
    results: dict[int, ExecutionResult],
) -> pd.DataFrame:
    """The dataset table: contract columns, then extras, then the generation columns found."""
    records = []
    for row in rows.itertuples():
        task_id = int(row.task_id)
        extraction = extractions[task_id]
        result = results.get(task_id) or _no_code_result(len(row.test_list))
        records.append(
            {
                "task_id": task_id,
                "temperature": TEMPERATURE,
                "prompt": str(row.prompt),
                "generated_code": extraction.code,
                "test_passed": bool(result.passed),
                "error_message": result.error_message,
                "generation_time": _float_or_nan(getattr(row, "generation_time", None)),
                "cyclomatic_complexity": int(row.cyclomatic_complexity),
                "test_list": json.dumps(list(row.test_list)),
                "completion": row.completion,
                "error_type": result.error_type.value if result.error_type else None,
                "n_tests_passed": result.n_tests_passed,
                "n_tests": result.n_tests,
                "extraction_method": extraction.method.value,
            }
        )
    columns = [*CONTRACT_COLUMNS, *EXTRA_COLUMNS]
    df = pd.DataFrame.from_records(records, columns=[name for name, _ in columns])
    for name, dtype in columns:
        if dtype == "object":
            df[name] = pd.Series([None if _is_missing(v) else str(v) for v in df[name]], dtype=object)
        else:
            df[name] = df[name].astype(dtype)
    for name in PASSTHROUGH_COLUMNS:
        if name in rows.columns:
            df[name] = rows[name].to_numpy()
    return df.sort_values("task_id", ignore_index=True)


def build_metadata(
    dataset: pd.DataFrame,
    *,
    problems: pd.DataFrame,
    best_layers: dict,
    excluded_ids: list[int],
    gen_meta: dict | None,
    act_meta: dict | None,
    sandbox: dict,
    inputs: dict,
    wall_time_s: float,
) -> dict:
    """``metadata.json``: the downstream keys first, then provenance."""
    gen_meta, act_meta = gen_meta or {}, act_meta or {}
    n_included = len(dataset)
    n_excluded = len(excluded_ids)
    n_attempted = n_included + n_excluded
    verify = act_meta.get("verify") if isinstance(act_meta.get("verify"), dict) else None
    return {
        "creation_timestamp": datetime.now(timezone.utc).isoformat(),
        "model_name": gen_meta.get("model") or act_meta.get("model"),
        "model_type": MODEL_TYPE,
        **best_layers,  # best_layers, extraction_layers, best_layers_source
        "temperature": TEMPERATURE,
        "validation_task_ids": sorted(int(t) for t in problems["task_id"]),
        "n_tasks_attempted": n_attempted,
        "n_tasks_included": n_included,
        "n_tasks_excluded": n_excluded,
        "exclusion_rate_percent": 100.0 * n_excluded / n_attempted if n_attempted else 0.0,
        "excluded_task_ids": excluded_ids,
        "excluded": gen_meta.get("excluded", [{"task_id": t, "reason": None} for t in excluded_ids]),
        "n_total_samples": n_included,
        "stats": summary_stats(dataset),
        "hook_point": act_meta.get("hook_point"),
        "prompt_style": gen_meta.get("prompt_style"),
        "fidelity": verify.get("fidelity") if verify else None,
        "replay_verify": verify,
        "library_versions": _library_versions(gen_meta, act_meta, sandbox),
        "sandbox": sandbox,
        "evaluation_wall_time_s": round(wall_time_s, 3),
        **inputs,
        "generations_metadata": gen_meta or None,
        "activations_metadata": act_meta or None,
    }


def summary_stats(dataset: pd.DataFrame) -> dict:
    """Pass counts and rate (0.0, not NaN, for an empty or all-failed dataset)."""
    n = len(dataset)
    n_correct = int(dataset["test_passed"].sum()) if n else 0
    times = dataset["generation_time"].to_numpy(dtype=float) if n else np.array([])
    times = times[np.isfinite(times)]
    errors = Counter(e for e in dataset["error_type"] if e is not None) if n else Counter()
    return {
        "n_correct": n_correct,
        "n_incorrect": n - n_correct,
        "pass_rate": n_correct / n if n else 0.0,
        "avg_generation_time": float(times.mean()) if times.size else None,
        "error_types": {e.value: int(errors.get(e.value, 0)) for e in ErrorType},
    }


def _best_layers(folders: Sequence[str | Path], layers: str | None, act_meta: dict | None) -> BestLayers:
    """``--layers`` if given, else the layers the replay extracted, else the analysis' best layers."""
    replayed = tuple(sorted({int(x) for x in (act_meta or {}).get("layers") or ()}))
    if layers is not None or not replayed:
        return resolve_layers(folders, layers)
    try:
        best = resolve_layers(folders, None)
        if best.extraction_layers == replayed:
            return best
    except InputError:
        pass
    return resolve_layers(folders, ",".join(map(str, replayed)))


def _no_code_result(n_tests: int) -> ExecutionResult:
    return ExecutionResult(
        passed=False,
        error_type=ErrorType.SYNTAX_ERROR,
        error_message=NO_CODE_MESSAGE,
        n_tests_passed=0,
        n_tests=n_tests,
        wall_time_s=0.0,
    )


def _excluded_ids(gen_meta: dict | None, generations_path: Path) -> list[int]:
    ids = (gen_meta or {}).get("excluded_task_ids", [])
    if not isinstance(ids, list) or not all(isinstance(i, int) and not isinstance(i, bool) for i in ids):
        where = generations_path.parent / GENERATIONS_METADATA_FILE
        raise InputError(f"{where}: excluded_task_ids must be a list of ints")
    return sorted(ids)


def _optional_json(path: Path) -> dict | None:
    if not path.is_file():
        return None
    try:
        data = read_json(path)
    except json.JSONDecodeError as exc:
        raise InputError(f"{path}: not valid JSON ({exc}); rerun the stage that writes it") from exc
    if not isinstance(data, dict):
        raise InputError(f"{path}: expected a JSON object")
    return data


def _library_versions(gen_meta: dict, act_meta: dict, sandbox: dict) -> dict:
    versions = {
        "python": platform.python_version(),
        "pandas": pd.__version__,
        "pyarrow": importlib_metadata.version("pyarrow"),
        "numpy": np.__version__,
        "bubblewrap": sandbox.get("bwrap_version"),
    }
    # The generation and replay libraries as those stages recorded them.
    for meta in (gen_meta, act_meta):
        for key, value in meta.items():
            if key.endswith("_version") and isinstance(value, str):
                versions[key.removesuffix("_version")] = value
    return versions


def _float_or_nan(value: object) -> float:
    try:
        out = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return math.nan
    return out


def _is_missing(value: object) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))

