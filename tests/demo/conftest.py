"""TEMPORARY: ``demo_model`` with the moved module, until tests/conftest.py imports ``demo.model``."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="session")
def demo_model() -> Path:
    from demo.model import is_prepared, prepare_demo_model

    path = Path(os.environ.get("PVA_DEMO_MODEL", REPO / "data" / "models" / "smollm2-135m-instruct"))
    if not is_prepared(path):
        prepare_demo_model(output_dir=path, verify=False)
    return path
