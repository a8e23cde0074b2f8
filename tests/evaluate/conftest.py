"""The validation problems, built once per session from the shared MBPP and id list."""

from __future__ import annotations

from pathlib import Path

import pytest

from problems.split import build_validation_split


@pytest.fixture(scope="session")
def problems_path(tmp_path_factory: pytest.TempPathFactory, mbpp_path: Path, validation_ids_path: Path) -> Path:
    folder = tmp_path_factory.mktemp("phase0_1")
    split = build_validation_split(mbpp_path=mbpp_path, task_ids_path=validation_ids_path, output_dir=folder)
    return split.parquet_path


@pytest.fixture(scope="session")
def phase2_10_dir(shared_data: Path) -> Path:
    return shared_data / "pva_reference" / "phase2_10"
