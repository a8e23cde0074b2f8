"""Run many programs in parallel, keyed by job id (any hashable value, e.g. ``(task_id, "robust")``).

Each worker thread launches one sandboxed process at a time and waits on its pipes, so threads
are enough. Nothing is kept between runs: the 388 validation tasks take about 17 s, so a rerun
after a crash simply recomputes.
"""

from __future__ import annotations

import os
from collections.abc import Hashable, Mapping
from concurrent.futures import ThreadPoolExecutor, as_completed
from typing import TypeVar

from tqdm import tqdm

from evaluate.sandbox import Program, Sandbox
from evaluate.verdict import ExecutionResult

JobId = TypeVar("JobId", bound=Hashable)


def default_workers() -> int:
    """CPUs this process may use."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def run_programs(programs: Mapping[JobId, Program], *, sandbox: Sandbox, workers: int | None = None,
                 progress: bool | None = None) -> dict[JobId, ExecutionResult]:
    """Run every program (``workers`` at a time [default: CPU count]); results in the order of ``programs``.

    ``progress`` shows a tqdm bar [default: when stderr is a terminal].
    """
    done: dict[JobId, ExecutionResult] = {}
    with (
        ThreadPoolExecutor(max_workers=max(1, workers or default_workers())) as pool,
        tqdm(total=len(programs), desc="evaluate", unit="run", disable=None if progress is None else not progress) as bar,
    ):
        futures = {pool.submit(sandbox.run, program): job for job, program in programs.items()}
        for future in as_completed(futures):
            done[futures[future]] = future.result()
            bar.update(1)
    return {job: done[job] for job in programs}
