"""Run many programs in parallel, keyed by job id, with a resumable checkpoint.

Each worker thread launches one sandboxed process at a time and waits on its pipes, so
threads are enough (the work happens in the child processes). Results are appended to a
JSON-lines checkpoint as they finish (by the calling thread only); a rerun after a crash
reuses every line whose key (program, verdict rules, limits, sandbox kind, harness and
decision sources) still matches, so nothing is lost and nothing stale is reused.

Job ids are ints, strings or tuples of them (``(task_id, "robust")``), written to the
checkpoint as JSON.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Hashable, Mapping
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import asdict
from pathlib import Path
from typing import TypeVar

from tqdm import tqdm

from evaluate import checks, values, verdict
from evaluate.outcomes import ExecutionResult
from evaluate.sandbox import HARNESS_SOURCE, Program, Sandbox

JobId = TypeVar("JobId", bound=Hashable)
# The parent-side rules that turn records into a result: a change to them invalidates the checkpoint.
DECISION_SOURCE = "".join(Path(m.__file__).read_text() for m in (checks, values, verdict))


def default_workers() -> int:
    """CPUs this process may use."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def run_programs(
    programs: Mapping[JobId, Program],
    *,
    sandbox: Sandbox,
    workers: int | None = None,
    checkpoint: str | os.PathLike[str] | None = None,
    progress: bool = True,
) -> dict[JobId, ExecutionResult]:
    """Run every program; results keyed by job id.

    Args:
        programs: job id -> program, in the order to start them.
        sandbox: where to run them.
        workers: parallel programs [default: CPU count].
        checkpoint: JSON-lines file of finished results to resume from and append to.
        progress: show a tqdm bar.

    Returns:
        Job id -> result, for every key of ``programs``.
    """
    keys = {job: program_key(program, sandbox) for job, program in programs.items()}
    done = _load_checkpoint(checkpoint, keys) if checkpoint else {}
    todo = [job for job in programs if job not in done]
    sink = open(checkpoint, "a", encoding="utf-8") if checkpoint else None  # noqa: SIM115
    try:
        with (
            ThreadPoolExecutor(max_workers=max(1, workers or default_workers())) as pool,
            tqdm(total=len(programs), initial=len(done), desc="evaluate", unit="run", disable=not progress) as bar,
        ):
            futures = {pool.submit(sandbox.run, programs[job]): job for job in todo}
            for future in as_completed(futures):  # only this thread writes the checkpoint
                job = futures[future]
                result = future.result()
                done[job] = result
                if sink is not None:
                    sink.write(json.dumps({"job": job, "key": keys[job], "result": result.to_json()}) + "\n")
                    sink.flush()
                bar.update(1)
    finally:
        if sink is not None:
            sink.close()
    return {job: done[job] for job in programs}


def program_key(program: Program, sandbox: Sandbox) -> str:
    """A hash of everything that decides a program's result."""
    payload = json.dumps(
        [
            HARNESS_SOURCE,
            DECISION_SOURCE,
            sandbox.kind.value,
            asdict(sandbox.limits),
            program.verdict.value,
            program.code,
            program.setup_code,
            program.tests,
        ]
    )
    return hashlib.sha256(payload.encode()).hexdigest()


def _load_checkpoint(path: str | os.PathLike[str], keys: Mapping[JobId, str]) -> dict[JobId, ExecutionResult]:
    out: dict = {}
    path = Path(path)
    if not path.is_file():
        return out
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            entry = json.loads(line)
            job = _job_id(entry["job"])
            if keys.get(job) == entry["key"]:
                out[job] = ExecutionResult.from_json(entry["result"])
        except (ValueError, KeyError, TypeError):
            continue  # a line cut by a crash
    return out


def _job_id(value: object) -> Hashable:
    """A job id read back from JSON (lists become tuples again)."""
    return tuple(_job_id(v) for v in value) if isinstance(value, list) else value  # type: ignore[return-value]
