"""Settings of the evaluate stage (``python cli.py evaluate``)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

from artifacts.layout import (
    ACTIVATIONS_METADATA_FILE,
    ACTIVATIONS_SUBDIR,
    DATASET_METADATA_FILE,
    GENERATIONS_FILE,
    GenerationsInput,
)
from artifacts.model_type import ModelTypeSetting
from artifacts.schema import dataset as keys
from artifacts.settings import StageConfig, setting
from evaluate.batch import default_workers
from evaluate.sandbox import DEFAULT_SANDBOX, Limits, SandboxKind
from evaluate.verdict import Verdict


@dataclass(frozen=True)
class EvaluateConfig(StageConfig, ModelTypeSetting, GenerationsInput):
    """Score each completion against its MBPP tests; write the dataset parquet, metadata.json and phase_output.json.

    Every completion is scored under both verdicts (robust and legacy); --verdict picks the one
    in test_passed. The layers block of metadata.json is copied from the replay's
    activations_metadata.json beside the generations (unknown without it). A rerun redoes
    every program (about 17 s for the 388 validation tasks).
    """

    STAGE: ClassVar[str] = "evaluate"

    generations_path: Path | None = setting(
        None, flag="--generations", default_text=f"OUTPUT_DIR/{GENERATIONS_FILE}",
        help="Table with task_id and completion columns (.parquet, .jsonl, .json, .csv).")
    completion_column: str = setting(
        keys.COMPLETION,
        help="Column of --generations holding the model output (e.g. generated_code in the earlier phases' parquets).")
    verdict: str = setting(
        Verdict.ROBUST.value, choices=tuple(v.value for v in Verdict),
        help="Which verdict fills test_passed (both are computed and kept): robust (extracted code, "
        "test_setup_code, values compared outside the sandbox) or legacy (the earlier tool's rules, "
        "as the base baseline and the 7.6 steering code used).")
    problems_path: Path | None = setting(
        None, flag="--problems", default_text="DATA_DIR/phase0_1/validation_mbpp.parquet", help="Problems parquet.")
    output_dir: Path | None = setting(
        None, default_text="DATA_DIR/phase7_3", identity=False,
        help="Where the dataset, metadata.json and phase_output.json go.")
    workers: int | None = setting(
        None, minimum=1, default_text=f"CPU count, here {default_workers()}", identity=False,
        help="Programs run in parallel.")
    timeout: float = setting(
        Limits().timeout_s, minimum=0.1,
        help="Wall-clock seconds per program (all its tests); the whole process tree is killed.")
    sandbox: str = setting(
        DEFAULT_SANDBOX.value, choices=tuple(k.value for k in SandboxKind),
        help="bwrap: isolated with bubblewrap. process: resource limits only, NOT isolated.")

    @property
    def problems(self) -> Path:
        return self.problems_path or self.layout.problems

    @property
    def activations_metadata(self) -> Path:
        """Read when present: the layers block, hook point and replay fidelity."""
        return self.generations.parent / ACTIVATIONS_SUBDIR / ACTIVATIONS_METADATA_FILE

    @property
    def dataset_path(self) -> Path:
        return self.folder / self.dataset_file

    @property
    def metadata_path(self) -> Path:
        return self.folder / DATASET_METADATA_FILE

    @property
    def phase_output_path(self) -> Path:
        return self.folder / keys.PHASE_OUTPUT_FILE

    def inputs(self) -> list[Path]:
        return [self.generations, self.problems, self.generations_metadata, self.activations_metadata]

    def outputs(self) -> list[Path]:
        return [self.dataset_path, self.metadata_path, self.phase_output_path]

    def record_dir(self) -> Path:
        return self.folder
