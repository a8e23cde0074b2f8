"""The dataset contract: the dataset table, ``metadata.json`` and ``phase_output.json`` (pure).

Names come from :mod:`artifacts.schema.dataset`, which the readers import too. Every row is
scored under both verdicts: the chosen one fills ``test_passed``, ``error_message``,
``error_type`` and ``n_tests_passed``; both are kept in the ``robust_*`` and ``legacy_*`` extras.
"""

from __future__ import annotations

import json
import math
import platform
from collections import Counter
from collections.abc import Mapping
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import pandas as pd

from artifacts.layout import DATASET_METADATA_FILE
from artifacts.schema import activations as act_keys
from artifacts.schema import dataset as keys
from artifacts.schema import generations as gen_keys
from artifacts.versions import package_version
from evaluate.extract import Extraction
from evaluate.verdict import ErrorType, ExecutionResult, Verdict, count_trusted

TEMPERATURE = 0.0  # greedy decoding: the dataset's name says so
# best_layers_source of overridden layers: "--layers (best features from PATH)" (artifacts.feature_list).
OVERRIDE_MARKER = "best features from "
NO_CODE_MESSAGE = "no parsable Python code in the completion"
# (name, pandas dtype) of the contract columns, in order. "object" columns hold str or None.
CONTRACT_COLUMNS: tuple[tuple[str, str], ...] = (
    (keys.TASK_ID, "int64"),
    (keys.TEMPERATURE, "float64"),
    (keys.PROMPT, "object"),
    (keys.GENERATED_CODE, "object"),
    (keys.TEST_PASSED, "bool"),
    (keys.ERROR_MESSAGE, "object"),
    (keys.GENERATION_TIME, "float64"),
    (keys.CYCLOMATIC_COMPLEXITY, "int64"),
    (keys.TEST_LIST, "object"),
)
EXTRA_COLUMNS: tuple[tuple[str, str], ...] = (
    (keys.COMPLETION, "object"),
    (keys.ERROR_TYPE, "object"),
    (keys.N_TESTS_PASSED, "int64"),
    (keys.N_TESTS, "int64"),
    (keys.N_TESTS_TRUSTED, "int64"),
    (keys.EXTRACTION_METHOD, "object"),
    (keys.ROBUST_TEST_PASSED, "bool"),
    (keys.ROBUST_ERROR_MESSAGE, "object"),
    (keys.LEGACY_TEST_PASSED, "bool"),
    (keys.LEGACY_ERROR_MESSAGE, "object"),
    (keys.BASELINE_PASSED, "bool"),
)
# Copied, with their own types, from the generations table when present (they help explain failures).
PASSTHROUGH_COLUMNS: tuple[str, ...] = ("finish_reason", "n_prompt_tokens", "n_completion_tokens")


def build_dataset(rows: pd.DataFrame, extractions: Mapping[int, Extraction],
                  results: Mapping[Verdict, Mapping[int, ExecutionResult]], *,
                  verdict: Verdict = Verdict.ROBUST) -> pd.DataFrame:
    """The dataset table, ascending ``task_id``: contract columns, then extras, then the generation columns found.

    Args:
        rows: the joined generations and problems (:func:`evaluate.score.read_inputs`).
        extractions: task id -> the extracted code.
        results: verdict -> task id -> result; a task without a robust result had no code.
        verdict: which verdict fills ``test_passed`` and its companions.
    """
    records = []
    for row in rows.itertuples():
        task_id = int(row.task_id)
        tests = list(row.test_list)
        no_code = ExecutionResult(False, ErrorType.SYNTAX_ERROR, NO_CODE_MESSAGE, 0, len(tests), 0.0)
        by_verdict = {v: results.get(v, {}).get(task_id) or no_code for v in Verdict}
        chosen, robust, legacy = by_verdict[verdict], by_verdict[Verdict.ROBUST], by_verdict[Verdict.LEGACY]
        records.append({
            keys.TASK_ID: task_id,
            keys.TEMPERATURE: TEMPERATURE,
            keys.PROMPT: str(row.prompt),
            keys.GENERATED_CODE: extractions[task_id].code,
            keys.TEST_PASSED: bool(chosen.passed),
            keys.ERROR_MESSAGE: chosen.error_message,
            keys.GENERATION_TIME: _float_or_nan(getattr(row, "generation_time", None)),
            keys.CYCLOMATIC_COMPLEXITY: int(row.cyclomatic_complexity),
            keys.TEST_LIST: json.dumps(tests),
            keys.COMPLETION: row.completion,
            keys.ERROR_TYPE: chosen.error_type.value if chosen.error_type else None,
            keys.N_TESTS_PASSED: chosen.n_tests_passed,
            keys.N_TESTS: len(tests),
            keys.N_TESTS_TRUSTED: count_trusted(tests),
            keys.EXTRACTION_METHOD: extractions[task_id].method.value,
            keys.ROBUST_TEST_PASSED: bool(robust.passed),
            keys.ROBUST_ERROR_MESSAGE: robust.error_message,
            keys.LEGACY_TEST_PASSED: bool(legacy.passed),
            keys.LEGACY_ERROR_MESSAGE: legacy.error_message,
            keys.BASELINE_PASSED: bool(chosen.passed),
        })
    # Typed column by column: pandas would infer its own string dtype for the "object" columns.
    df = pd.DataFrame({name: pd.Series([r[name] for r in records], dtype=dtype)
                       for name, dtype in (*CONTRACT_COLUMNS, *EXTRA_COLUMNS)})
    for name in PASSTHROUGH_COLUMNS:
        if name in rows.columns:
            df[name] = rows[name].to_numpy()
    return df.sort_values(keys.TASK_ID, ignore_index=True)


def build_metadata(dataset: pd.DataFrame, *, excluded_ids: list[int], gen_meta: Mapping | None,
                   act_meta: Mapping | None, sandbox: Mapping, inputs: Mapping, wall_time_s: float,
                   verdict: Verdict = Verdict.ROBUST, model_type: str = keys.MODEL_TYPE_INSTRUCT,
                   completion_column: str = keys.COMPLETION) -> dict:
    """``metadata.json``: the downstream keys first, then provenance.

    Args:
        excluded_ids: tasks the generation attempted but left out (ascending).
        gen_meta: the generation's metadata (model, prompt style, exclusions, library versions).
        act_meta: the replay's metadata, whose layers block, hook point and fidelity are copied.
        sandbox: :meth:`evaluate.sandbox.Sandbox.describe`.
        inputs: file names and hashes of the inputs.
    """
    gen_meta, act_meta = dict(gen_meta or {}), dict(act_meta or {})
    n_included = len(dataset)
    n_excluded = len(excluded_ids)
    n_attempted = n_included + n_excluded
    verify = act_keys.verify_block(act_meta)
    return {
        keys.CREATION_TIMESTAMP: datetime.now(timezone.utc).isoformat(),
        keys.MODEL_NAME: gen_meta.get(gen_keys.MODEL) or act_meta.get(act_keys.MODEL),
        keys.MODEL_TYPE: keys.normalize_model_type(model_type),
        **layers_block(act_meta),
        keys.META_TEMPERATURE: TEMPERATURE,
        keys.VALIDATION_TASK_IDS: sorted({int(t) for t in dataset[keys.TASK_ID]} | set(excluded_ids)),
        keys.N_TASKS_ATTEMPTED: n_attempted,
        keys.N_TASKS_INCLUDED: n_included,
        keys.N_TASKS_EXCLUDED: n_excluded,
        keys.EXCLUSION_RATE_PERCENT: 100.0 * n_excluded / n_attempted if n_attempted else 0.0,
        keys.EXCLUDED_TASK_IDS: excluded_ids,
        keys.EXCLUDED: gen_meta.get(gen_keys.EXCLUDED, [{"task_id": t, "reason": None} for t in excluded_ids]),
        keys.N_TOTAL_SAMPLES: n_included,
        keys.STATS: summary_stats(dataset),
        keys.VERDICT: verdict.value,
        keys.VERDICTS: verdict_stats(dataset),
        keys.META_N_TESTS: int(dataset[keys.N_TESTS].sum()),
        keys.META_N_TESTS_TRUSTED: int(dataset[keys.N_TESTS_TRUSTED].sum()),
        keys.COMPLETION_COLUMN: completion_column,
        keys.HOOK_POINT: act_meta.get(act_keys.HOOK_POINT),
        keys.HOOK_POINT_EXPLANATION: act_keys.hook_point_explanation(act_meta) if act_meta else None,
        keys.PROMPT_STYLE: gen_meta.get(gen_keys.PROMPT_STYLE),
        keys.FIDELITY: verify.get(act_keys.VERIFY_FIDELITY) if verify else None,
        keys.REPLAY_VERIFY: verify,
        keys.LIBRARY_VERSIONS: _library_versions(gen_meta, act_meta, sandbox),
        keys.SANDBOX: dict(sandbox),
        keys.EVALUATION_WALL_TIME_S: round(wall_time_s, 3),
        **inputs,
        keys.GENERATIONS_METADATA: gen_meta or None,
        keys.ACTIVATIONS_METADATA: act_meta or None,
    }


def layers_block(act_meta: Mapping | None) -> dict:
    """``best_layers``, ``extraction_layers`` and ``best_layers_source`` as the replay recorded them.

    Each is null when unknown (no replay metadata, or one without the block). An older replay
    file without ``extraction_layers`` still names the replayed layers, which are the same.
    """
    act_meta = act_meta or {}
    best = act_meta.get(keys.BEST_LAYERS)
    best = {name: best.get(name) for name in keys.BEST_LAYERS_FIELDS} if isinstance(best, Mapping) else None
    layers = act_meta.get(keys.EXTRACTION_LAYERS, act_meta.get(act_keys.LAYERS))
    return {
        keys.BEST_LAYERS: best or dict.fromkeys(keys.BEST_LAYERS_FIELDS),
        keys.EXTRACTION_LAYERS: list(layers) if layers is not None else None,
        keys.BEST_LAYERS_SOURCE: act_meta.get(keys.BEST_LAYERS_SOURCE),
    }


def build_phase_output(*, dataset_file: str, model_name: str | None, problems_folder: Path,
                       best_layers_source: str | None, extra_outputs: Mapping[str, str] | None = None,
                       phase2_5_folder: Path | None = None) -> dict:
    """``phase_output.json``, the manifest the newer research code finds this phase's files through.

    Args:
        dataset_file: the dataset's file name (``outputs.primary``).
        model_name: recorded under ``config``.
        problems_folder: the Phase 0.1 dependency.
        best_layers_source: the metadata's source of the best layers; its folder is the feature-list
            dependency (Phase 2.10, or 2.5 when it is ``phase2_5_folder``), left out when unknown.
        extra_outputs: further ``{name: file name}`` in the same folder (activations, generations).
    """
    dependencies = {keys.DEPENDENCY_PROBLEMS: str(problems_folder)}
    feature_list = feature_list_folder(best_layers_source)
    if feature_list is not None:
        is_2_5 = phase2_5_folder is not None and feature_list.resolve() == Path(phase2_5_folder).resolve()
        phase = keys.DEPENDENCY_FEATURE_LIST_FALLBACK if is_2_5 else keys.DEPENDENCY_FEATURE_LIST
        dependencies[phase] = str(feature_list)
    return {
        keys.PHASE: keys.PHASE_ID,
        keys.CREATED_AT: datetime.now(timezone.utc).isoformat(),
        keys.CONFIG: {keys.CONFIG_MODEL_NAME: model_name, keys.CONFIG_DATASET_NAME: keys.DATASET_NAME},
        keys.OUTPUTS: {keys.OUTPUT_PRIMARY: dataset_file, keys.OUTPUT_METADATA: DATASET_METADATA_FILE,
                       **(extra_outputs or {})},
        keys.DEPENDENCIES: dependencies,
    }


def feature_list_folder(source: str | None) -> Path | None:
    """The folder of the feature-list file a ``best_layers_source`` names, or None (unknown, or ``--layers`` alone).

    The source is the file's path, or ``--layers (best features from PATH)`` when the replay's
    layers were overridden.
    """
    if not source:
        return None
    path = source.split(OVERRIDE_MARKER, 1)[1].removesuffix(")") if OVERRIDE_MARKER in source else source
    return None if path.startswith("--") else Path(path).parent


def summary_stats(dataset: pd.DataFrame) -> dict:
    """Pass counts and rate of the chosen verdict (0.0, not NaN, for an empty or all-failed dataset)."""
    times = dataset[keys.GENERATION_TIME].to_numpy(dtype=float)
    times = times[np.isfinite(times)]
    errors = Counter(e for e in dataset[keys.ERROR_TYPE] if e is not None)
    return {
        **_counts(dataset[keys.TEST_PASSED]),
        keys.STATS_AVG_GENERATION_TIME: float(times.mean()) if times.size else None,
        keys.STATS_ERROR_TYPES: {e.value: int(errors.get(e.value, 0)) for e in ErrorType},
    }


def verdict_stats(dataset: pd.DataFrame) -> dict:
    """Pass counts and rate under each verdict: ``{"robust": {...}, "legacy": {...}}``."""
    return {v: _counts(dataset[column]) for v, column in keys.VERDICT_COLUMNS.items()}


def _counts(passed: pd.Series) -> dict:
    n = len(passed)
    n_correct = int(passed.sum())
    return {
        keys.STATS_N_CORRECT: n_correct,
        keys.STATS_N_INCORRECT: n - n_correct,
        keys.STATS_PASS_RATE: n_correct / n if n else 0.0,
    }


def _library_versions(gen_meta: Mapping, act_meta: Mapping, sandbox: Mapping) -> dict:
    versions = {
        "python": platform.python_version(),
        "pandas": pd.__version__,
        "pyarrow": package_version("pyarrow"),
        "numpy": np.__version__,
        "bubblewrap": sandbox.get("bwrap_version"),
    }
    # The generation and replay libraries as those stages recorded them.
    for meta in (gen_meta, act_meta):
        for key, value in meta.items():
            if key.endswith(act_keys.VERSION_SUFFIX) and isinstance(value, str):
                versions[key.removesuffix(act_keys.VERSION_SUFFIX)] = value
    return versions


def _float_or_nan(value: object) -> float:
    try:
        return float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return math.nan
