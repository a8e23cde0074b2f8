"""End to end on the demo model (SmolLM2-135M-Instruct) with 8 validation problems.

Acceptance: complete rows with non-empty completions, a rerun that changes nothing, and a
SIGKILL mid-run that loses at most the chunk in flight, after which a rerun finishes with
output identical to the uninterrupted run.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq
import pytest

from artifacts.files import sha256_file
from tests.gen.cli_run import REPO, cli_command, cli_env, run_cli

N_TASKS = 8
CHUNK = 2
MAX_NEW_TOKENS = 48


def generate_args(model: Path, problems: Path, out: Path) -> list[str]:
    return [
        "generate", "--model", str(model), "--problems", str(problems), "--output-dir", str(out),
        "--limit", str(N_TASKS), "--max-new-tokens", str(MAX_NEW_TOKENS), "--chunk-size", str(CHUNK), "--enforce-eager",
    ]


@pytest.fixture(scope="module")
def first_run(demo_model: Path, problems_parquet: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("demo-generate")
    proc = run_cli(*generate_args(demo_model, problems_parquet, out))
    assert proc.returncode == 0, proc.stderr[-3000:]
    return out


@pytest.mark.slow
def test_rows_are_complete(first_run: Path, problems_parquet: Path) -> None:
    df = pd.read_parquet(first_run / "generations.parquet")
    meta = json.loads((first_run / "generations_metadata.json").read_text())
    expected_ids = pd.read_parquet(problems_parquet)["task_id"].iloc[:N_TASKS].tolist()
    assert df["task_id"].tolist() == sorted(expected_ids)
    assert not df.isna().any().any()
    assert (df["completion"].str.strip().str.len() > 0).all()
    assert (df["n_completion_tokens"] == df["completion_token_ids"].map(len)).all()
    assert (df["n_prompt_tokens"] == df["prompt_token_ids"].map(len)).all()
    assert df["finish_reason"].isin(["stop", "length"]).all()
    assert (df.loc[df["finish_reason"] == "length", "n_completion_tokens"] == MAX_NEW_TOKENS).all()
    assert (df["generation_time"] > 0).all()
    assert meta["complete"] and meta["n_tasks"] == N_TASKS and meta["chunk_size"] == CHUNK
    assert meta["n_completion_tokens"] == int(df["n_completion_tokens"].sum()) and meta["tokens_per_s"] > 0
    assert meta["stop_token_ids"] == [2] and meta["prompt_style"] == "raw" and meta["model_hash"]


@pytest.mark.slow
def test_rerun_is_a_no_op(first_run: Path, demo_model: Path, problems_parquet: Path) -> None:
    files = [first_run / "generations.parquet", first_run / "generations_metadata.json"]
    before = [sha256_file(f) for f in files]
    proc = run_cli(*generate_args(demo_model, problems_parquet, first_run))
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert f"nothing to do: all {N_TASKS} selected problems are already in" in proc.stdout
    assert "EngineCore" not in proc.stderr  # no engine was started
    assert [sha256_file(f) for f in files] == before


@pytest.mark.slow
def test_sigkill_loses_at_most_the_chunk_in_flight(first_run: Path, demo_model: Path, problems_parquet: Path, tmp_path: Path) -> None:
    out = tmp_path / "killed"
    parquet = out / "generations.parquet"
    # Own process group, so the kill takes vLLM's engine processes too, like a crashed machine.
    proc = subprocess.Popen(
        cli_command(*generate_args(demo_model, problems_parquet, out)), cwd=REPO, env=cli_env(),
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
    )
    seen = 0
    try:
        deadline = time.monotonic() + 600
        while time.monotonic() < deadline and proc.poll() is None:
            if parquet.exists():
                seen = pq.read_table(parquet).num_rows
                if seen >= CHUNK:
                    break
            time.sleep(0.05)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    assert proc.returncode == -signal.SIGKILL, "the run ended before it could be killed"
    assert seen >= CHUNK

    after_kill = pq.read_table(parquet)
    assert after_kill.num_rows >= seen and after_kill.num_rows % CHUNK == 0  # whole chunks only
    assert after_kill.num_rows < N_TASKS

    rerun = run_cli(*generate_args(demo_model, problems_parquet, out))
    assert rerun.returncode == 0, rerun.stderr[-3000:]
    assert f"{N_TASKS - after_kill.num_rows} generated, {after_kill.num_rows} already done" in rerun.stdout
    assert not list(out.glob(".*.tmp"))

    resumed = pd.read_parquet(parquet)
    uninterrupted = pd.read_parquet(first_run / "generations.parquet")
    columns = ["task_id", "prompt_token_ids", "completion_token_ids", "completion", "finish_reason"]
    assert resumed[columns].map(lambda v: tuple(v) if hasattr(v, "__len__") and not isinstance(v, str) else v).equals(
        uninterrupted[columns].map(lambda v: tuple(v) if hasattr(v, "__len__") and not isinstance(v, str) else v)
    )
    meta = json.loads((out / "generations_metadata.json").read_text())
    assert meta["complete"] and len(meta["runs"]) == 2
