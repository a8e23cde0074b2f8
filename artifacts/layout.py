"""Where every stage's inputs and outputs live under one data folder (``$PVA_DATA_DIR`` or ``./data``).

Inputs made elsewhere are found through environment variables, so shared files are read in
place, never copied; every command takes options that override single paths.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

DEFAULT_MODEL = "google/gemma-2-2b-it"

# Environment variables naming inputs that live outside the project.
DATA_DIR_ENV = "PVA_DATA_DIR"
MBPP_ENV = "PVA_MBPP"  # MBPP .jsonl/.json/.parquet; unset: the Hugging Face hub
TASK_IDS_ENV = "PVA_TASK_IDS"  # JSON list of task ids; unset: the stratified split
PHASE2_10_ENV = "PVA_PHASE2_10_DIR"  # folder holding Phase 2.10 top_20_features.json
PHASE2_5_ENV = "PVA_PHASE2_5_DIR"  # folder holding Phase 2.5 top_20_features.json


def default_data_dir() -> Path:
    """``$PVA_DATA_DIR`` or ``./data``."""
    return Path(os.environ.get(DATA_DIR_ENV, "data"))


@dataclass(frozen=True)
class Layout:
    """Paths of the pipeline's files below ``root`` (see ``data/README.md``)."""

    root: Path

    @classmethod
    def default(cls) -> "Layout":
        return cls(default_data_dir())

    @property
    def phase0_1(self) -> Path:
        return self.root / "phase0_1"

    @property
    def problems(self) -> Path:
        return self.phase0_1 / PROBLEMS_FILE

    # Phase 2: the SAE analysis' outputs (inputs here).
    @property
    def phase2_10(self) -> Path:
        return Path(os.environ.get(PHASE2_10_ENV, self.root / "phase2_10"))

    @property
    def phase2_5(self) -> Path:
        return Path(os.environ.get(PHASE2_5_ENV, self.root / "phase2_5"))

    @property
    def phase7_3(self) -> Path:
        return self.root / "phase7_3"

    @property
    def models(self) -> Path:
        return self.root / "models"

    @property
    def demo_model(self) -> Path:
        return self.models / "smollm2-135m-instruct"


# File names inside the phase 0.1 folder (split's --output-dir).
PROBLEMS_FILE = "validation_mbpp.parquet"
SPLIT_METADATA_FILE = "split_metadata.json"

# File names inside the phase 7.3 output folder (a stage's --output-dir).
GENERATIONS_FILE = "generations.parquet"
GENERATIONS_METADATA_FILE = "generations_metadata.json"
ACTIVATIONS_SUBDIR = "activations"
TASK_ACTIVATIONS_SUBDIR = "task_activations"
ACTIVATIONS_METADATA_FILE = "activations_metadata.json"
DATASET_FILE = "dataset_instruct_temp_0_0.parquet"
DATASET_METADATA_FILE = "metadata.json"
REPORT_SUBDIR = "report"


def activation_file_name(task_id: int, layer: int, suffix: str = "npz") -> str:
    """``{task_id}_layer_{L}.{suffix}``: the per-task, per-layer activation file the downstream code reads."""
    return f"{int(task_id)}_layer_{int(layer)}.{suffix}"


class GenerationsInput:
    """Paths mixin (with a ``StageConfig`` that has ``output_dir`` and ``generations_path`` fields)
    of a stage that reads the generations and writes into the stage folder."""

    @property
    def folder(self) -> Path:
        return self.output_dir or self.layout.phase7_3

    @property
    def generations(self) -> Path:
        return self.generations_path or self.folder / GENERATIONS_FILE

    @property
    def generations_metadata(self) -> Path:
        return self.generations.parent / GENERATIONS_METADATA_FILE
