"""SIGKILL of the Ray backend's driver after a commit: the rerun finishes, keeps what was committed, equals an uninterrupted run.

On the tiny random Gemma-2 in float32, a local Ray started by the driver
(``tests/gen/ray_generate_script.py``, in its own session like a user's command), with
``--commit-every 1`` and one row per Ray Data batch, so completions come back and are
committed one by one:

1. the driver is SIGKILLed once at least one row (and not every row) is committed;
2. nothing the driver started outlives it (the local Ray and the vLLM engines in its actors);
3. the rerun generates only the missing tasks and keeps the committed rows byte for byte;
4. the final file equals an uninterrupted run's (every column but the times).

The uninterrupted reference is the session's embedded engine (``tiny_vllm_run``): the same
engine configuration and prompts, and ``tests/gen/test_ray_backend.py`` shows the Ray backend
gives the embedded engine's ids. Two Ray runs in all (the killed one, the rerun).

Once ``generate --backend ray`` exists, the script's two calls become that command line (with
``--commit-every 1``), as in ``tests/pipeline/test_kill_resume.py``.
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pandas as pd
import pytest

from tests.gen.tiny_engine import TEST_ENV, TinyRun

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[2]
GENERATIONS = "generations.parquet"
METADATA = "generations_metadata.json"
TIMING_COLUMNS = ["generation_time"]
MARKER_ENV = "PVA_RAY_KILL_TEST"  # inherited by everything the driver starts: how survivors are found


def _env(marker: str) -> dict[str, str]:
    path = os.pathsep.join(p for p in (str(REPO), os.environ.get("PYTHONPATH")) if p)
    return {**os.environ, **TEST_ENV, "PYTHONPATH": path, MARKER_ENV: marker}


def _rows(out: Path) -> int:
    path = out / GENERATIONS
    try:
        return len(pd.read_parquet(path, columns=["task_id"])) if path.is_file() else 0
    except Exception:  # noqa: BLE001 - the file is renamed into place atomically; a read can race it
        return 0


def _marked(marker: str) -> list[int]:
    """Live processes whose environment carries ``marker`` (Ray's, its workers', vLLM's)."""
    needle = f"{MARKER_ENV}={marker}".encode()
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if needle in (entry / "environ").read_bytes().split(b"\0"):
                stat = (entry / "stat").read_text()
                if stat.rsplit(")", 1)[1].split()[0] != "Z":  # zombies are gone, only not yet reaped
                    found.append(int(entry.name))
        except OSError:
            continue
    return found


def _kill_when(args: list[str], env: dict[str, str], ready: Callable[[], bool], log: Path, timeout: float = 1200) -> None:
    """Start ``args`` in its own session and SIGKILL the whole session once ``ready()``."""
    with log.open("ab") as out:
        proc = subprocess.Popen(args, cwd=REPO, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
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
    assert proc.returncode == -signal.SIGKILL, f"exited ({proc.returncode}) before the kill point:\n" + log.read_text()[-3000:]


@pytest.mark.timeout(2400)
def test_sigkill_of_the_ray_driver_then_rerun_keeps_commits_and_matches_an_uninterrupted_run(
    tiny_vllm_run: TinyRun, tmp_path: Path
) -> None:
    expected = pd.read_parquet(tiny_vllm_run.out / GENERATIONS)
    n = len(expected)
    inputs = tmp_path / "inputs"
    inputs.mkdir()
    shutil.copy2(tiny_vllm_run.out / GENERATIONS, inputs / GENERATIONS)
    shutil.copy2(tiny_vllm_run.out / METADATA, inputs / METADATA)
    (inputs / "config.json").write_text(json.dumps(dataclasses.asdict(tiny_vllm_run.config)))
    out = tmp_path / "killed"
    log = tmp_path / "driver.log"
    args = [sys.executable, "-m", "tests.gen.ray_generate_script", "--tasks", str(inputs / GENERATIONS),
            "--metadata", str(inputs / METADATA), "--config", str(inputs / "config.json"), "--out", str(out),
            "--commit-every", "1", "--batch-size", "1"]

    marker = tmp_path.name
    _kill_when(args, _env(marker), lambda: 0 < _rows(out) < n, log)
    committed = pd.read_parquet(out / GENERATIONS)
    print(f"driver killed with {len(committed)} of {n} rows committed")
    assert 0 < len(committed) < n, "the kill must land between the first commit and the last"

    deadline = time.monotonic() + 120
    while _marked(marker) and time.monotonic() < deadline:
        time.sleep(1)
    assert _marked(marker) == [], "processes of the killed driver's Ray outlived it"

    rerun = subprocess.run(args, cwd=REPO, env=_env(marker), capture_output=True, text=True, timeout=1200)
    assert rerun.returncode == 0, rerun.stdout[-3000:] + rerun.stderr[-3000:]
    assert f"{n - len(committed)} generated, {len(committed)} already done" in rerun.stdout
    deadline = time.monotonic() + 60
    while _marked(marker) and time.monotonic() < deadline:
        time.sleep(1)
    assert _marked(marker) == [], "the rerun's Ray outlived its close()"
    assert not list(out.glob(".*.tmp"))
    final = pd.read_parquet(out / GENERATIONS)
    kept = final[final["task_id"].isin(committed["task_id"])].reset_index(drop=True)
    pd.testing.assert_frame_equal(kept, committed)  # times included: the rows were kept, not regenerated
    columns = [c for c in expected.columns if c not in TIMING_COLUMNS]
    pd.testing.assert_frame_equal(final[columns], expected[columns])
