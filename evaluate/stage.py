"""The evaluate stage: generations + problems -> the dataset, ``metadata.json`` and ``phase_output.json``.

Writes atomically, at the end, to the output folder: ``dataset_instruct_temp_0_0.parquet``
(``dataset_base_temp_0_0.parquet`` for ``model_type="base"``), one row per task, ascending
``task_id``, the columns of :mod:`evaluate.dataset`; ``metadata.json`` (counts, stats,
verdicts, the layers block copied from the replay's metadata, provenance: see data/README.md);
``phase_output.json``, the manifest naming these files for the newer research code.

From a notebook::

    from evaluate.config import EvaluateConfig
    from evaluate.stage import run
    print(run(EvaluateConfig(data_dir="data", workers=2)).summary())
"""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from artifacts.files import sha256_file, write_json, write_parquet
from artifacts.layout import ACTIVATIONS_SUBDIR
from artifacts.records import stage_run
from artifacts.schema import dataset as keys
from evaluate.config import EvaluateConfig
from evaluate.dataset import build_metadata, build_phase_output
from evaluate.sandbox import Limits, Sandbox, SandboxKind
from evaluate.score import Inputs, read_inputs, score
from evaluate.verdict import Verdict

PROCESS_WARNING = (
    "warning: --sandbox process runs generated code WITHOUT isolation (resource limits only): "
    "it can read your files, use the network and signal your processes"
)


@dataclass(frozen=True)
class EvaluationResult:
    """What the stage wrote."""

    dataset: pd.DataFrame
    dataset_path: Path
    metadata_path: Path
    phase_output_path: Path
    metadata: dict

    def summary(self) -> str:
        """Where the dataset went, its pass rate under the chosen verdict, and under both."""
        meta = self.metadata
        stats = meta[keys.STATS]
        errors = ", ".join(f"{k} {v}" for k, v in stats[keys.STATS_ERROR_TYPES].items() if v)
        n = meta[keys.N_TASKS_INCLUDED]
        by_verdict = ", ".join(f"{v} {c[keys.STATS_N_CORRECT]}/{n}" for v, c in meta[keys.VERDICTS].items())
        return (
            f"wrote {self.dataset_path} ({n} tasks, {stats[keys.STATS_N_CORRECT]} passed, "
            f"pass rate {stats[keys.STATS_PASS_RATE]:.1%} under --verdict {meta[keys.VERDICT]}"
            + (f"; failures: {errors}" if errors else "")
            + f") in {meta[keys.EVALUATION_WALL_TIME_S]:.1f}s\n"
            f"passed by verdict: {by_verdict}; tests decided outside the sandbox: "
            f"{meta[keys.META_N_TESTS_TRUSTED]}/{meta[keys.META_N_TESTS]}"
        )


def run(config: EvaluateConfig, *, progress: bool | None = None) -> EvaluationResult:
    """Evaluate every completion and write the dataset, its metadata and the manifest.

    Args:
        config: the stage's settings.
        progress: show a progress bar [default: when stderr is a terminal].

    Raises:
        InputError: a missing or malformed input, unknown task ids, or a sandbox that cannot run here.
    """
    if config.sandbox == SandboxKind.PROCESS.value:
        print(PROCESS_WARNING, file=sys.stderr)
    with stage_run(config, overwrite=config.overwrite):
        started = time.monotonic()
        inputs = read_inputs(config)
        box = Sandbox(config.sandbox, limits=Limits(timeout_s=config.timeout))
        box.check()  # a known-good and a known-bad program
        dataset = score(inputs.rows, box, verdict=Verdict(config.verdict), workers=config.workers, progress=progress)
        metadata = _metadata(config, inputs, dataset, box.describe(), wall_time_s=time.monotonic() - started)
        config.folder.mkdir(parents=True, exist_ok=True)
        write_parquet(config.dataset_path, dataset)
        write_json(config.metadata_path, metadata)
        write_json(config.phase_output_path, _phase_output(config, metadata))
    for line in metadata[keys.SANDBOX]["warnings"]:
        print(line, file=sys.stderr)
    return EvaluationResult(dataset, config.dataset_path, config.metadata_path, config.phase_output_path, metadata)


def _metadata(config: EvaluateConfig, inputs: Inputs, dataset: pd.DataFrame, sandbox: dict, *,
              wall_time_s: float) -> dict:
    """``metadata.json`` of this run."""
    return build_metadata(
        dataset,
        excluded_ids=inputs.excluded_ids,
        gen_meta=inputs.gen_meta,
        act_meta=inputs.act_meta,
        sandbox=sandbox,
        inputs={
            keys.GENERATIONS_FILE: str(config.generations),
            keys.GENERATIONS_SHA256: sha256_file(config.generations),
            keys.PROBLEMS_FILE: str(config.problems),
            keys.PROBLEMS_SHA256: sha256_file(config.problems),
        },
        wall_time_s=wall_time_s,
        verdict=Verdict(config.verdict),
        model_type=config.model_type,
        completion_column=config.completion_column,
    )


def _phase_output(config: EvaluateConfig, metadata: dict) -> dict:
    """``phase_output.json``: this folder's files, and the problems and feature-list folders read."""
    folder = config.folder.resolve()
    extra = {}
    if (folder / ACTIVATIONS_SUBDIR).is_dir():
        extra[keys.OUTPUT_ACTIVATIONS] = ACTIVATIONS_SUBDIR
    if config.generations.resolve().parent == folder:
        extra[keys.OUTPUT_GENERATIONS] = config.generations.name
    return build_phase_output(dataset_file=config.dataset_path.name, model_name=metadata[keys.MODEL_NAME],
                              problems_folder=config.problems.parent,
                              best_layers_source=metadata[keys.BEST_LAYERS_SOURCE], extra_outputs=extra,
                              phase2_5_folder=config.layout.phase2_5)
