"""The suite's one SIGKILL test: generate and replay killed mid-run, resumed, equal to an uninterrupted run.

On the tiny random Gemma-2 in float32, with the real vLLM CPU engine and the real
TransformerLens replay, each stage run as a user runs it (``python -m cli ...`` in a child
process, in its own session so the kill takes vLLM's engine processes too):

1. reference: the session's tiny generations (``tiny_vllm_run``: the real ``generate`` through an
   engine configured exactly as this command line's), then ``replay-activations --layers 1,2``,
   uninterrupted;
2. ``generate`` SIGKILLed once at least one commit is on disk; the rows committed before the
   kill are counted, and the rerun keeps them byte for byte and generates only the rest;
3. ``replay-activations`` SIGKILLed once some task files exist; the rerun completes them;
4. the resumed generations equal the reference's (every column but the times: float32
   greedy on this model does not depend on how the stream batched), and every stored
   activation array equals the reference's.

Completions end at different steps (at ``<end_of_turn>``, at the context end, which the
longest prompt fills, or at the budget), and ``--commit-every 1`` commits each as it comes,
so the kill lands between the first commit and the last.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from artifacts.layout import ACTIVATIONS_SUBDIR, GENERATIONS_FILE, GENERATIONS_METADATA_FILE, TASK_ACTIVATIONS_SUBDIR
from tests.gen.tiny_engine import N_TASKS, TEST_ENV, TinyRun

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[2]
LAYERS = "1,2"  # the tiny model has 4 layers
TIMING_COLUMNS = ["generation_time"]


def _env() -> dict[str, str]:
    path = os.pathsep.join(p for p in (str(REPO), os.environ.get("PYTHONPATH")) if p)
    return {**os.environ, **TEST_ENV, "PYTHONPATH": path}


def _cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "cli", *args]


def _run(*args: str, timeout: float = 900) -> str:
    proc = subprocess.run(_cli(*args), cwd=REPO, env=_env(), capture_output=True, text=True, timeout=timeout)
    assert proc.returncode == 0, f"{args[0]} failed:\n{proc.stderr[-3000:]}"
    return proc.stdout


def _kill_when(args: list[str], ready: Callable[[], bool], log: Path, timeout: float = 900) -> None:
    """Start ``cli args`` in its own session and SIGKILL the whole session once ``ready()``."""
    with log.open("ab") as out:
        proc = subprocess.Popen(_cli(*args), cwd=REPO, env=_env(), stdout=out, stderr=subprocess.STDOUT,
                                start_new_session=True)
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline and proc.poll() is None:
            if ready():
                os.killpg(proc.pid, signal.SIGKILL)
                break
            time.sleep(0.005)
    finally:
        if proc.poll() is None and time.monotonic() >= deadline:
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    assert proc.returncode == -signal.SIGKILL, f"{args[0]} exited ({proc.returncode}) before the kill point:\n" + log.read_text()[-3000:]


def _rows(out: Path) -> int:
    path = out / GENERATIONS_FILE
    try:
        return len(pd.read_parquet(path, columns=["task_id"])) if path.is_file() else 0
    except Exception:  # noqa: BLE001 - the file is renamed into place atomically; a read can race it
        return 0


def _npz_files(out: Path) -> list[Path]:
    folder = out / ACTIVATIONS_SUBDIR / TASK_ACTIVATIONS_SUBDIR
    return sorted(folder.glob("*.npz")) if folder.is_dir() else []


@pytest.fixture(scope="module")
def reference(tiny_vllm_run: TinyRun, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The uninterrupted run: the session's tiny generations (same engine config as the command
    line below), replayed here uninterrupted."""
    out = tmp_path_factory.mktemp("uninterrupted")
    for name in (GENERATIONS_FILE, GENERATIONS_METADATA_FILE):
        shutil.copy2(tiny_vllm_run.out / name, out / name)
    _run(*_replay_args(out))
    return out


def _replay_args(out: Path) -> list[str]:
    return ["replay-activations", "--generations", str(out / GENERATIONS_FILE), "--output-dir", str(out),
            "--layers", LAYERS, "--batch-size", "1"]


def test_sigkill_in_generate_and_replay_then_resume_matches_an_uninterrupted_run(
    reference: Path, tiny_vllm_run: TinyRun, tmp_path: Path
) -> None:
    out = tmp_path / "killed"
    log = tmp_path / "killed.log"
    cmd = {"generate": [*tiny_vllm_run.generate_args(out), "--commit-every", "1"], "replay": _replay_args(out)}
    expected = pd.read_parquet(reference / GENERATIONS_FILE)
    n = len(expected)  # the tasks that fit the context (one of N_TASKS is excluded)
    assert n == N_TASKS - 1

    _kill_when(cmd["generate"], lambda: 0 < _rows(out) < n, log)
    committed = pd.read_parquet(out / GENERATIONS_FILE)
    print(f"generate killed with {len(committed)} of {n} rows committed")
    assert 0 < len(committed) < n, "the kill must land between the first commit and the last"

    rerun = _run(*cmd["generate"])
    assert f"{n - len(committed)} generated, {len(committed)} already done, 1 excluded" in rerun
    assert not list(out.glob(".*.tmp"))
    final = pd.read_parquet(out / GENERATIONS_FILE)
    kept = final[final["task_id"].isin(committed["task_id"])].reset_index(drop=True)
    pd.testing.assert_frame_equal(kept, committed)  # times included: the rows were kept, not regenerated
    columns = [c for c in expected.columns if c not in TIMING_COLUMNS]
    pd.testing.assert_frame_equal(final[columns], expected[columns])

    n_files = 2 * n
    _kill_when(cmd["replay"], lambda: 0 < len(_npz_files(out)) < n_files, log)
    stored_at_kill = len(_npz_files(out))
    print(f"replay killed with {stored_at_kill} of {n_files} task files stored")
    assert 0 < stored_at_kill < n_files, "the kill must land in the middle of replay"
    replayed = _run(*cmd["replay"])
    assert f"of {n} tasks" in replayed

    ref_files = _npz_files(reference)
    assert [p.name for p in _npz_files(out)] == [p.name for p in ref_files] and len(ref_files) == n_files
    for ref_path in ref_files:
        with np.load(ref_path) as want, np.load(out / ACTIVATIONS_SUBDIR / TASK_ACTIVATIONS_SUBDIR / ref_path.name) as got:
            assert sorted(got.files) == sorted(want.files), ref_path.name
            for key in want.files:
                assert np.array_equal(got[key], want[key]), f"{ref_path.name}:{key}"
