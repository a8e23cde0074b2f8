"""`python cli.py run` end to end on a small real model: contracts, resume after SIGKILL.

Real vLLM CPU engine, real TransformerLens, real bubblewrap sandbox; nothing mocked.
The uninterrupted run is the reference; a second run is killed with SIGKILL in the
middle of generation and again in the middle of replay, then resumed, and must end with
the same final outputs.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from tests.pipeline.contracts import check_all_contracts

pytestmark = pytest.mark.slow

N_TASKS = 8

TIMING_COLUMNS = {"generation_time"}
ENV = {"VLLM_CPU_KVCACHE_SPACE": "1", "VLLM_CPU_NUM_OF_RESERVED_CPU": "0", "TOKENIZERS_PARALLELISM": "false"}


def _run_args(data_dir: Path, model: Path, mbpp: Path, ids: Path, phase2_10: Path) -> list[str]:
    return [
        sys.executable, "cli.py", "run", "--data-dir", str(data_dir), "--model", str(model),
        "--mbpp", str(mbpp), "--task-ids", str(ids), "--phase2-10-dir", str(phase2_10),
        "--limit", str(N_TASKS), "--max-new-tokens", "96", "--chunk-size", "2", "--enforce-eager",
        "--replay-batch-size", "1", "--verify", "2", "--workers", "2",
    ]


def _start(args: list[str], repo: Path, log: Path) -> subprocess.Popen:
    # A new session so that SIGKILL reaches the stage process and vLLM's workers too.
    return subprocess.Popen(args, cwd=repo, env={**os.environ, **ENV}, stdout=log.open("ab"),
                            stderr=subprocess.STDOUT, start_new_session=True)


def _kill_when(proc: subprocess.Popen, ready, timeout: float = 900) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if ready():
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
            return
        if proc.poll() is not None:
            pytest.fail(f"run exited ({proc.returncode}) before the kill point was reached")
        time.sleep(0.02)
    os.killpg(proc.pid, signal.SIGKILL)
    pytest.fail("kill point not reached in time")


def _generated_rows(out: Path) -> int:
    path = out / "generations.parquet"
    try:
        return len(pd.read_parquet(path, columns=["task_id"])) if path.is_file() else 0
    except Exception:  # file being renamed into place
        return 0


def _n_npz(out: Path) -> int:
    folder = out / "activations" / "task_activations"
    return len(list(folder.glob("*.npz"))) if folder.is_dir() else 0


@pytest.fixture(scope="module")
def inputs(demo_model, mbpp_path, validation_ids_path, shared_data):
    return demo_model, mbpp_path, validation_ids_path, shared_data / "pva_reference" / "phase2_10"


@pytest.fixture(scope="module")
def reference_run(tmp_path_factory, inputs, repo_root):
    data = tmp_path_factory.mktemp("reference")
    proc = subprocess.run(_run_args(data, *inputs), cwd=repo_root, env={**os.environ, **ENV},
                          capture_output=True, text=True, timeout=1800)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return data, proc.stdout


def test_run_writes_every_contract_file(reference_run, inputs):
    data, stdout = reference_run
    out = data / "phase7_3"
    check_all_contracts(data, n_tasks=N_TASKS, layers=[16, 19], model=str(inputs[0]))
    assert "pipeline finished" in stdout
    assert (out / "report" / "report.md").is_file()


def test_rerun_after_success_skips_finished_work(reference_run, inputs, repo_root):
    data, _ = reference_run
    before = pd.read_parquet(data / "phase7_3" / "generations.parquet")
    proc = subprocess.run(_run_args(data, *inputs), cwd=repo_root, env={**os.environ, **ENV},
                          capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "split: already done" in proc.stdout
    assert "nothing to do" in proc.stdout
    pd.testing.assert_frame_equal(before, pd.read_parquet(data / "phase7_3" / "generations.parquet"))


def test_sigkill_in_generation_and_replay_then_resume_matches(reference_run, inputs, repo_root, tmp_path):
    ref_data, _ = reference_run
    data = tmp_path / "data"
    out = data / "phase7_3"
    log = tmp_path / "run.log"
    args = _run_args(data, *inputs)

    first = _start(args, repo_root, log)
    _kill_when(first, lambda: 0 < _generated_rows(out) < N_TASKS)
    assert 0 < _generated_rows(out) < N_TASKS, "the kill must land in the middle of generation"

    second = _start(args, repo_root, log)
    _kill_when(second, lambda: 0 < _n_npz(out) < 2 * N_TASKS)
    assert _generated_rows(out) == N_TASKS
    assert 0 < _n_npz(out) < 2 * N_TASKS, "the kill must land in the middle of replay"

    third = subprocess.run(args, cwd=repo_root, env={**os.environ, **ENV}, capture_output=True, text=True,
                           timeout=1800)
    assert third.returncode == 0, log.read_text()[-2000:] + third.stderr[-3000:]
    check_all_contracts(data, n_tasks=N_TASKS, layers=[16, 19], model=str(inputs[0]))
    _assert_same_outputs(ref_data / "phase7_3", out)


def _assert_same_outputs(ref: Path, got: Path) -> None:
    for name in ("generations.parquet", "dataset_instruct_temp_0_0.parquet"):
        a = pd.read_parquet(ref / name)
        b = pd.read_parquet(got / name)
        cols = [c for c in a.columns if c not in TIMING_COLUMNS]
        pd.testing.assert_frame_equal(a[cols], b[cols], obj=name)
    ref_npz = sorted(p.name for p in (ref / "activations" / "task_activations").glob("*.npz"))
    got_npz = sorted(p.name for p in (got / "activations" / "task_activations").glob("*.npz"))
    assert ref_npz == got_npz
    for name in ref_npz:
        with np.load(ref / "activations" / "task_activations" / name) as a, \
                np.load(got / "activations" / "task_activations" / name) as b:
            np.testing.assert_array_equal(a["token_ids"], b["token_ids"])
            np.testing.assert_allclose(a["arr_0"], b["arr_0"], rtol=1e-4, atol=1e-4)
    ref_meta = json.loads((ref / "metadata.json").read_text())
    got_meta = json.loads((got / "metadata.json").read_text())
    for key in ("n_tasks_attempted", "n_tasks_included", "excluded_task_ids", "stats", "best_layers",
                "extraction_layers", "validation_task_ids"):
        a, b = ref_meta[key], got_meta[key]
        if key == "stats":
            a = {k: v for k, v in a.items() if k != "avg_generation_time"}
            b = {k: v for k, v in b.items() if k != "avg_generation_time"}
        assert a == b, key
