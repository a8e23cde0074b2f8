"""The split stage: MBPP + validation ids -> ``validation_mbpp.parquet`` (see :mod:`problems.split`)."""

from __future__ import annotations

from artifacts.records import stage_run
from problems.config import SplitConfig
from problems.split import SplitResult, build_validation_split


def run(config: SplitConfig) -> SplitResult:
    """Build the validation problems under the stage's completion record."""
    with stage_run(config, overwrite=config.overwrite):
        return build_validation_split(mbpp_path=config.mbpp_path, task_ids_path=config.task_ids_path,
                                      output_dir=config.folder, seed=config.seed)
