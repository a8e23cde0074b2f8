"""Parallel runs keyed by job id, whatever order they finish in."""

from __future__ import annotations

import time

import pytest

from evaluate.batch import run_programs
from evaluate.sandbox import Limits, Program, Sandbox

PROGRAMS = {
    7: Program("def f(x):\n    return x", ("assert f(1) == 1",)),
    3: Program("def f(x):\n    return 0", ("assert f(1) == 1",)),
    5: Program("import time\ndef f(x):\n    time.sleep(0.3)\n    return x", ("assert f(2) == 2",)),
}


@pytest.fixture(scope="module")
def box():
    return Sandbox("process", limits=Limits(timeout_s=5))


def test_results_are_keyed_by_job_id_whatever_the_finish_order(box):
    results = run_programs(PROGRAMS, sandbox=box, workers=3, progress=False)
    assert list(results) == [7, 3, 5]
    assert [r.passed for r in results.values()] == [True, False, True]


def test_tuple_job_ids(box):
    jobs = {(7, "robust"): PROGRAMS[7], (3, "robust"): PROGRAMS[3]}
    assert [r.passed for r in run_programs(jobs, sandbox=box, workers=2, progress=False).values()] == [True, False]


def test_workers_run_programs_at_the_same_time(box):
    sleepy = Program("import time\ndef f():\n    time.sleep(1.0)\n    return 1", ("assert f() == 1",))
    start = time.perf_counter()
    results = run_programs({i: sleepy for i in range(4)}, sandbox=box, workers=4, progress=False)
    # Sequentially 4 s and more; in parallel about 1 s plus four launches.
    assert all(r.passed for r in results.values()) and time.perf_counter() - start < 3.0
