"""``generate --backend ray``: the suite's only Ray runs, two of them (the killed one, the rerun).

On the tiny random Gemma-2 in float32, through the real command line
(``python -m cli generate ... --backend ray --commit-every 1``, in its own session like a
user's command), with a local Ray started by the driver (``RAY_ADDRESS`` unset):

1. the driver is SIGKILLed once at least one row (and not every row) is committed; rows come
   back one Ray Data batch at a time, and ``--commit-every 1`` makes that batch one row;
2. nothing the driver started outlives it (the local Ray, its workers, the vLLM engines in
   its actors);
3. the rerun generates only the missing tasks and keeps the committed rows byte for byte;
4. the final file's token ids equal the embedded engine's on every task (the session's
   ``tiny_vllm_run``: the real ``generate`` through an engine configured as this command
   line's), every column but the times equal;
5. the metadata records the backend, the Ray version and the local cluster's resources, and
   moves the replicas' start out of the generation time.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pandas as pd
import pytest

from artifacts.layout import GENERATIONS_FILE, GENERATIONS_METADATA_FILE
from artifacts.schema import generations as keys
from tests.gen.tiny_engine import N_TASKS, TEST_ENV, TinyRun

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[2]
TIMING_COLUMNS = ["generation_time"]
MARKER_ENV = "PVA_RAY_KILL_TEST"  # inherited by everything the driver starts: how survivors are found
RAY_START_S = 900  # one Ray run: engine start in a Ray actor took 80-280 s on 2 shared cores


def _env(marker: str) -> dict[str, str]:
    path = os.pathsep.join(p for p in (str(REPO), os.environ.get("PYTHONPATH")) if p)
    env = {**os.environ, **TEST_ENV, "PYTHONPATH": path, MARKER_ENV: marker}
    env.pop("RAY_ADDRESS", None)  # a local Ray for the run, never a cluster set in the environment
    return env


def _rows(out: Path) -> int:
    path = out / GENERATIONS_FILE
    try:
        return len(pd.read_parquet(path, columns=["task_id"])) if path.is_file() else 0
    except Exception:  # noqa: BLE001 - the file is renamed into place atomically; a read can race it
        return 0


def _marked(marker: str) -> list[int]:
    """Live processes whose environment carries ``marker`` (the driver's, Ray's, its workers', vLLM's)."""
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


def _kill_when(args: list[str], env: dict[str, str], ready: Callable[[], bool], log: Path) -> None:
    """Start ``args`` in its own session and SIGKILL the whole session once ``ready()``."""
    with log.open("ab") as out:
        proc = subprocess.Popen(args, cwd=REPO, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    deadline = time.monotonic() + RAY_START_S
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
    assert proc.returncode == -signal.SIGKILL, f"exited ({proc.returncode}) before the kill point:\n" + log.read_text()[-3000:]


def _check_metadata(out: Path) -> None:
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


@pytest.mark.timeout(2 * RAY_START_S + 300)
def test_sigkill_of_the_ray_driver_then_rerun_keeps_commits_and_gives_the_embedded_ids(
    tiny_vllm_run: TinyRun, tmp_path: Path
) -> None:
    expected = pd.read_parquet(tiny_vllm_run.out / GENERATIONS_FILE)
    n = len(expected)  # the tasks that fit the context (one of N_TASKS is excluded)
    assert n == N_TASKS - 1
    out = tmp_path / "killed"
    args = [sys.executable, "-m", "cli", *tiny_vllm_run.generate_args(out), "--backend", "ray", "--commit-every", "1"]
    marker = tmp_path.name
    env = _env(marker)
    try:
        _kill_when(args, env, lambda: 0 < _rows(out) < n, tmp_path / "killed.log")
        committed = pd.read_parquet(out / GENERATIONS_FILE)
        print(f"driver killed with {len(committed)} of {n} rows committed")
        assert 0 < len(committed) < n, "the kill must land between the first commit and the last"
        assert _survivors(marker, 120) == [], "processes of the killed driver's Ray outlived it"

        start = time.perf_counter()
        rerun = subprocess.run(args, cwd=REPO, env=env, capture_output=True, text=True, timeout=RAY_START_S)
        print(f"rerun: {time.perf_counter() - start:.0f}s")
        assert rerun.returncode == 0, rerun.stdout[-3000:] + rerun.stderr[-3000:]
        assert f"{n - len(committed)} generated, {len(committed)} already done, 1 excluded" in rerun.stdout
        assert _survivors(marker, 60) == [], "the rerun's Ray outlived its driver"
    finally:
        _survivors(marker, 0)
    assert not list(out.glob(".*.tmp"))
    final = pd.read_parquet(out / GENERATIONS_FILE)
    kept = final[final["task_id"].isin(committed["task_id"])].reset_index(drop=True)
    pd.testing.assert_frame_equal(kept, committed)  # times included: the rows were kept, not regenerated
    columns = [c for c in expected.columns if c not in TIMING_COLUMNS]
    pd.testing.assert_frame_equal(final[columns], expected[columns])
    # The run is not trivial: completions stop at <end_of_turn> and at the context end.
    assert set(final["finish_reason"]) == {"stop", "length"}
    _check_metadata(out)
