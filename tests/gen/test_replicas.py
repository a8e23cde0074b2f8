"""Data parallelism: each replica gets its own devices or cores; outputs come back in order."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pandas as pd
import pytest

from artifacts.errors import InputError
from gen.hf_reference import hf_greedy
from gen.replicas import CPU_BIND_ENV, CUDA_DEVICES_ENV, replica_envs
from gen.stop_tokens import end_of_turn_ids
from tests.gen.cli_run import run_cli


def test_cpu_cores_are_split_between_replicas() -> None:
    cores = sorted(os.sched_getaffinity(0))
    envs = replica_envs(len(cores), tensor_parallel_size=1, device="cpu")
    assert [e[CPU_BIND_ENV] for e in envs] == [str(c) for c in cores]
    with pytest.raises(InputError, match="CPU cores available"):
        replica_envs(len(cores) + 1, tensor_parallel_size=1, device="cpu")


def test_gpus_are_sliced_by_tensor_parallel_size(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(CUDA_DEVICES_ENV, "4,5,6,7")
    envs = replica_envs(2, tensor_parallel_size=2, device="cuda")
    assert [e[CUDA_DEVICES_ENV] for e in envs] == ["4,5", "6,7"]
    with pytest.raises(InputError, match="needs 6 GPUs, 4 visible"):
        replica_envs(3, tensor_parallel_size=2, device="cuda")


@pytest.mark.slow
def test_two_cpu_replicas_give_the_single_engine_tokens(tiny_gemma2: Path, problems_parquet: Path, tmp_path: Path) -> None:
    """Two replicas (one core each) return every completion, in order, equal to Hugging Face greedy
    (which the tiny e2e test shows a single engine matches token for token)."""
    if len(os.sched_getaffinity(0)) < 2:
        pytest.skip("needs 2 CPU cores for 2 replicas")
    proc = run_cli(
        "generate", "--model", str(tiny_gemma2), "--problems", str(problems_parquet), "--limit", "5",
        "--max-new-tokens", "12", "--max-model-len", "1024", "--enforce-eager", "--chunk-size", "5",
        "--data-parallel-size", "2", "--output-dir", str(tmp_path),
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    df = pd.read_parquet(tmp_path / "generations.parquet")
    assert len(df) == 5
    prompts = [[int(i) for i in p] for p in df["prompt_token_ids"]]
    expected = hf_greedy(str(tiny_gemma2), prompts, max_new_tokens=12, stop_token_ids=end_of_turn_ids(str(tiny_gemma2)).ids)
    assert df["completion_token_ids"].map(lambda ids: [int(i) for i in ids]).tolist() == expected
    meta = json.loads((tmp_path / "generations_metadata.json").read_text())
    assert meta["data_parallel_size"] == 2
