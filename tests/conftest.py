"""Fixtures shared by the whole suite: the shared data folder and small models."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

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
