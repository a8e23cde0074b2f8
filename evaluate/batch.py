"""Run many programs in parallel, keyed by task id, with a resumable checkpoint.

Each worker thread launches one sandboxed process at a time and waits on its pipes, so
threads are enough (the work happens in the child processes). Results are appended to a
JSON-lines checkpoint as they finish; a rerun after a crash reuses every line whose key
(program, limits, sandbox kind, harness source) still matches, so nothing is lost and
nothing stale is reused.
"""

from __future__ import annotations

import hashlib
import json
import os
import threading
from dataclasses import asdict
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor, as_completed
from pathlib import Path

from tqdm import tqdm

from evaluate.outcomes import ExecutionResult
from evaluate.sandbox import HARNESS_SOURCE, Program, Sandbox


def default_workers() -> int:
    """CPUs this process may use."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def run_programs(
    programs: Mapping[int, Program],
    *,
    sandbox: Sandbox,
    workers: int | None = None,
    checkpoint: str | os.PathLike[str] | None = None,
    progress: bool = True,
) -> dict[int, ExecutionResult]:
    """Run every program; results keyed by task id.

    Args:
        programs: task id -> program.
        sandbox: where to run them.
        workers: parallel programs [default: CPU count].
        checkpoint: JSON-lines file of finished results to resume from and append to.
        progress: show a tqdm bar.

    Returns:
        Task id -> result, for every key of ``programs``.
    """
    keys = {task_id: program_key(program, sandbox) for task_id, program in programs.items()}
    done = _load_checkpoint(checkpoint, keys) if checkpoint else {}
    todo = [task_id for task_id in programs if task_id not in done]
    lock = threading.Lock()
    sink = open(checkpoint, "a", encoding="utf-8") if checkpoint else None  # noqa: SIM115
    try:
        with (
            ThreadPoolExecutor(max_workers=max(1, workers or default_workers())) as pool,
            tqdm(total=len(programs), initial=len(done), desc="evaluate", unit="task", disable=not progress) as bar,
        ):
            futures = {pool.submit(sandbox.run, programs[task_id]): task_id for task_id in todo}
            for future in as_completed(futures):
                task_id = futures[future]
                result = future.result()
                done[task_id] = result
                if sink is not None:
                    with lock:
                        line = {"task_id": task_id, "key": keys[task_id], "result": result.to_json()}
                        sink.write(json.dumps(line) + "\n")
                        sink.flush()
                bar.update(1)
    finally:
        if sink is not None:
            sink.close()
    return {task_id: done[task_id] for task_id in programs}


def program_key(program: Program, sandbox: Sandbox) -> str:
    """A hash of everything that decides a program's result."""
    payload = json.dumps(
        [HARNESS_SOURCE, sandbox.kind.value, asdict(sandbox.limits), program.code, program.setup_code, program.tests]
    )
    return hashlib.sha256(payload.encode()).hexdigest()


def _load_checkpoint(path: str | os.PathLike[str], keys: Mapping[int, str]) -> dict[int, ExecutionResult]:
    out: dict[int, ExecutionResult] = {}
    path = Path(path)
    if not path.is_file():
        return out
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            entry = json.loads(line)
            task_id = int(entry["task_id"])
            if keys.get(task_id) == entry["key"]:
                out[task_id] = ExecutionResult.from_json(entry["result"])
        except (ValueError, KeyError, TypeError):
            continue  # a line cut by a crash
    return out
