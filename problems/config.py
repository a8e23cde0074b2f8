"""Settings of the split stage (``python cli.py split``)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

from artifacts.layout import MBPP_ENV, PROBLEMS_FILE, SPLIT_METADATA_FILE, TASK_IDS_ENV
from artifacts.settings import StageConfig, setting


@dataclass(frozen=True)
class SplitConfig(StageConfig):
    """Write validation_mbpp.parquet and split_metadata.json (the problems of every later stage)."""

    STAGE: ClassVar[str] = "split"

    mbpp_path: Path | None = setting(
        None, flag="--mbpp", envvar=MBPP_ENV,
        help=f"MBPP file (.jsonl, .json array or .parquet) [env {MBPP_ENV}]. Without it, "
        "google-research-datasets/mbpp is downloaded from the Hugging Face hub.")
    task_ids_path: Path | None = setting(
        None, flag="--task-ids", envvar=TASK_IDS_ENV,
        help=f"JSON list of validation task ids [env {TASK_IDS_ENV}]. Without it, the stratified complexity "
        "split is recomputed.")
    seed: int = setting(42, help="Seed of the stratified split (ignored with --task-ids).")
    output_dir: Path | None = setting(None, help="Destination folder [default: DATA_DIR/phase0_1].", identity=False)

    @property
    def folder(self) -> Path:
        return self.output_dir or self.layout.phase0_1

    def inputs(self) -> list[Path]:
        return [p for p in (self.mbpp_path, self.task_ids_path) if p is not None]

    def outputs(self) -> list[Path]:
        return [self.folder / PROBLEMS_FILE, self.folder / SPLIT_METADATA_FILE]

    def record_dir(self) -> Path:
        return self.folder
