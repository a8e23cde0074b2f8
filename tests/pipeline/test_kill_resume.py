"""SIGKILL mid-run, then a rerun: nothing committed is lost and the result equals an uninterrupted run.

On the tiny random Gemma-2 in float32, each stage run as a user runs it (``python -m cli ...``
in a child process, in its own session, so the kill takes everything the command started).
The uninterrupted reference is the session's tiny generations (``tiny_vllm_run``: the real
``generate`` through an engine configured exactly as these command lines ask), replayed once.
Completions end at different steps (at ``<end_of_turn>``, at the context end, which the longest
prompt fills, or at the budget), and ``--commit-every 1`` commits each as it comes, so a kill
lands between the first commit and the last.

1. Embedded engine: ``generate`` killed after a commit, rerun; ``replay-activations`` killed
   once some task files exist, rerun; generations and every stored array equal the reference's.
2. ``generate --backend ray`` (the suite's only Ray runs: the killed one and its rerun, each
   with a local Ray started by the driver, ``RAY_ADDRESS`` unset): nothing the killed driver
   started outlives it (the local Ray, its workers, the engines in its actors); the rerun keeps
   the committed rows byte for byte, and its token ids equal the embedded engine's on every
   task; the metadata records the backend, the Ray version and the local cluster's resources,
   and moves the replicas' start out of the generation time.
"""

from __future__ import annotations

import json
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
from artifacts.schema import generations as keys
from tests.gen.tiny_engine import N_TASKS, TEST_ENV, TinyRun

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[2]
LAYERS = "1,2"  # the tiny model has 4 layers
TIMING_COLUMNS = ["generation_time"]
RUN_S = 900  # one command; an engine start in a Ray actor took 80-280 s on 2 shared cores
MARKER_ENV = "PVA_KILL_TEST"  # inherited by everything a command starts: how survivors are found


def _env(marker: str) -> dict[str, str]:
    path = os.pathsep.join(p for p in (str(REPO), os.environ.get("PYTHONPATH")) if p)
    env = {**os.environ, **TEST_ENV, "PYTHONPATH": path, MARKER_ENV: marker}
    env.pop("RAY_ADDRESS", None)  # a local Ray for a Ray run, never a cluster set in the environment
    return env


def _cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "cli", *args]


def _run(args: list[str], env: dict[str, str]) -> str:
    proc = subprocess.run(_cli(*args), cwd=REPO, env=env, capture_output=True, text=True, timeout=RUN_S)
    assert proc.returncode == 0, f"{args[0]} failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    return proc.stdout


def _kill_when(args: list[str], env: dict[str, str], ready: Callable[[], bool], log: Path) -> None:
    """Start ``cli args`` in its own session and SIGKILL the whole session once ``ready()``."""
    with log.open("ab") as out:
        proc = subprocess.Popen(_cli(*args), cwd=REPO, env=env, stdout=out, stderr=subprocess.STDOUT,
                                start_new_session=True)
    deadline = time.monotonic() + RUN_S
    try:
        while time.monotonic() < deadline and proc.poll() is None:
            if ready():
                os.killpg(proc.pid, signal.SIGKILL)
                break
            time.sleep(0.005)
    finally:
        if proc.poll() is None:  # past the deadline, or the test itself failed
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    assert proc.returncode == -signal.SIGKILL, f"{args[0]} exited ({proc.returncode}) before the kill point:\n" + log.read_text()[-3000:]


def _rows(out: Path) -> int:
    path = out / GENERATIONS_FILE
    try:
        return len(pd.read_parquet(path, columns=["task_id"])) if path.is_file() else 0
    except Exception:  # noqa: BLE001 - the file is renamed into place atomically; a read can race it
        return 0


def _marked(marker: str) -> list[int]:
    """Live processes whose environment carries ``marker`` (a command's and all it started)."""
    needle = f"{MARKER_ENV}={marker}".encode()
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if needle in (entry / "environ").read_bytes().split(b"\0"):
                if (entry / "stat").read_text().rsplit(")", 1)[1].split()[0] != "Z":  # zombies are gone already
                    found.append(int(entry.name))
        except OSError:
            continue
    return found


def _survivors(marker: str, wait_s: float) -> list[int]:
    """The marked processes still alive after up to ``wait_s`` (Ray's take a moment to go); they are then
    killed by pid, so none outlives the test, and returned for the assertion."""
    deadline = time.monotonic() + wait_s
    while _marked(marker) and time.monotonic() < deadline:
        time.sleep(1)
    left = _marked(marker)
    for pid in left:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    return left


def _kill_and_resume_generate(args: list[str], env: dict[str, str], out: Path, expected: pd.DataFrame,
                              log: Path) -> pd.DataFrame:
    """Kill ``generate`` after its first commit and before its last, rerun it; return the final table.

    The rerun generates only the missing tasks and keeps the committed rows byte for byte; the
    result equals ``expected`` in every column but the times.
    """
    n = len(expected)
    _kill_when(args, env, lambda: 0 < _rows(out) < n, log)
    committed = pd.read_parquet(out / GENERATIONS_FILE)
    print(f"{args[0]} killed with {len(committed)} of {n} rows committed")
    assert 0 < len(committed) < n, "the kill must land between the first commit and the last"
    assert _survivors(env[MARKER_ENV], 120) == [], "processes of the killed command outlived it"

    start = time.perf_counter()
    rerun = _run(args, env)
    print(f"rerun: {time.perf_counter() - start:.0f}s")
    assert f"{n - len(committed)} generated, {len(committed)} already done, 1 excluded" in rerun
    assert _survivors(env[MARKER_ENV], 60) == [], "the rerun's processes outlived it"
    assert not list(out.glob(".*.tmp"))
    final = pd.read_parquet(out / GENERATIONS_FILE)
    kept = final[final["task_id"].isin(committed["task_id"])].reset_index(drop=True)
    pd.testing.assert_frame_equal(kept, committed)  # times included: the rows were kept, not regenerated
    columns = [c for c in expected.columns if c not in TIMING_COLUMNS]
    pd.testing.assert_frame_equal(final[columns], expected[columns])
    return final


def _npz_files(out: Path) -> list[Path]:
    folder = out / ACTIVATIONS_SUBDIR / TASK_ACTIVATIONS_SUBDIR
    return sorted(folder.glob("*.npz")) if folder.is_dir() else []


def _replay_args(out: Path) -> list[str]:
    return ["replay-activations", "--generations", str(out / GENERATIONS_FILE), "--output-dir", str(out),
            "--layers", LAYERS, "--batch-size", "1"]


@pytest.fixture(scope="module")
def expected(tiny_vllm_run: TinyRun) -> pd.DataFrame:
    table = pd.read_parquet(tiny_vllm_run.out / GENERATIONS_FILE)
    assert len(table) == N_TASKS - 1  # the tasks that fit the context (one is excluded)
    return table


@pytest.fixture(scope="module")
def reference(tiny_vllm_run: TinyRun, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The uninterrupted run: the session's tiny generations, replayed here uninterrupted."""
    out = tmp_path_factory.mktemp("uninterrupted")
    for name in (GENERATIONS_FILE, GENERATIONS_METADATA_FILE):
        shutil.copy2(tiny_vllm_run.out / name, out / name)
    _run(_replay_args(out), _env("reference"))
    return out


def test_sigkill_in_generate_and_replay_then_resume_matches_an_uninterrupted_run(
    reference: Path, expected: pd.DataFrame, tiny_vllm_run: TinyRun, tmp_path: Path
) -> None:
    out = tmp_path / "killed"
    env = _env(tmp_path.name)
    try:
        _kill_and_resume_generate([*tiny_vllm_run.generate_args(out), "--commit-every", "1"], env, out, expected,
                                  tmp_path / "generate.log")

        n_files = 2 * len(expected)
        _kill_when(_replay_args(out), env, lambda: 0 < len(_npz_files(out)) < n_files, tmp_path / "replay.log")
        stored_at_kill = len(_npz_files(out))
        print(f"replay killed with {stored_at_kill} of {n_files} task files stored")
        assert 0 < stored_at_kill < n_files, "the kill must land in the middle of replay"
        assert f"of {len(expected)} tasks" in _run(_replay_args(out), env)
    finally:
        _survivors(env[MARKER_ENV], 0)

    ref_files = _npz_files(reference)
    assert [p.name for p in _npz_files(out)] == [p.name for p in ref_files] and len(ref_files) == n_files
    for ref_path in ref_files:
        with np.load(ref_path) as want, np.load(out / ACTIVATIONS_SUBDIR / TASK_ACTIVATIONS_SUBDIR / ref_path.name) as got:
            assert sorted(got.files) == sorted(want.files), ref_path.name
            for key in want.files:
                assert np.array_equal(got[key], want[key]), f"{ref_path.name}:{key}"


def _check_ray_metadata(out: Path) -> None:
    import ray

    meta = json.loads((out / GENERATIONS_METADATA_FILE).read_text())
    assert meta[keys.COMPLETE] is True and meta[keys.BACKEND] == "ray" and len(meta[keys.RUNS]) == 2
    for info in meta[keys.RUNS]:
        assert info[keys.BACKEND] == "ray" and info[keys.RAY_VERSION] == ray.__version__
        resources = info[keys.RAY_CLUSTER_RESOURCES]
        assert resources["CPU"] == len(os.sched_getaffinity(0)) and resources["memory"] > 0
        assert info["ray_local_cluster"] is True and info["ray_cluster_nodes"] == 1
        assert info["ray_batch_size"] == 1  # --commit-every 1: rows come back one by one
        # vLLM's LLM defaults on CPU (the embedded engine's scheduler), not the async engine's.
        assert (info["ray_replica_max_num_seqs"], info["ray_replica_max_num_batched_tokens"]) == (256, 4096)
    rerun = meta[keys.RUNS][-1]
    # The replicas start inside the run: that start is engine start, not generation.
    assert 0 < rerun["ray_startup_s"] <= rerun["engine_load_time_s"] < rerun[keys.WALL_TIME_S]
    assert rerun[keys.GENERATION_TIME_S] < rerun[keys.WALL_TIME_S] - rerun["ray_startup_s"]


@pytest.mark.timeout(2 * RUN_S + 300)
def test_sigkill_of_the_ray_driver_then_rerun_keeps_commits_and_gives_the_embedded_ids(
    expected: pd.DataFrame, tiny_vllm_run: TinyRun, tmp_path: Path
) -> None:
    out = tmp_path / "killed"
    env = _env(tmp_path.name)
    args = [*tiny_vllm_run.generate_args(out), "--backend", "ray", "--commit-every", "1"]
    try:
        final = _kill_and_resume_generate(args, env, out, expected, tmp_path / "generate.log")
    finally:
        _survivors(env[MARKER_ENV], 0)
    # The run is not trivial: completions stop at <end_of_turn> and at the context end.
    assert set(final["finish_reason"]) == {"stop", "length"}
    _check_ray_metadata(out)
