"""Parallel runs keyed by task id, and resuming from the checkpoint after a crash."""

from __future__ import annotations

import json

import pytest

from evaluate.batch import program_key, run_programs
from evaluate.outcomes import Verdict
from evaluate.sandbox import Limits, Program, Sandbox

PROGRAMS = {
    7: Program("def f(x):\n    return x", ("assert f(1) == 1",)),
    3: Program("def f(x):\n    return 0", ("assert f(1) == 1",)),
    5: Program("import time\ndef f(x):\n    time.sleep(0.3)\n    return x", ("assert f(2) == 2",)),
}


@pytest.fixture(scope="module")
def box():
    return Sandbox("process", limits=Limits(timeout_s=5))


def test_results_are_keyed_by_task_id_whatever_the_finish_order(box):
    results = run_programs(PROGRAMS, sandbox=box, workers=3, progress=False)
    assert list(results) == [7, 3, 5]
    assert [r.passed for r in results.values()] == [True, False, True]


def test_a_rerun_resumes_from_the_checkpoint_and_ignores_stale_or_torn_lines(box, tmp_path, monkeypatch):
    checkpoint = tmp_path / "ckpt.jsonl"
    first = run_programs(PROGRAMS, sandbox=box, workers=2, checkpoint=checkpoint, progress=False)
    lines = checkpoint.read_text().splitlines()
    assert sorted(json.loads(line)["job"] for line in lines) == [3, 5, 7]
    # A crash mid-write leaves a torn last line; a changed program must be rerun.
    checkpoint.write_text("\n".join(lines) + '\n{"job": 9, "ke')
    changed = {**PROGRAMS, 3: Program("def f(x):\n    return x", ("assert f(1) == 1",))}
    ran = []
    real_run = Sandbox.run
    monkeypatch.setattr(Sandbox, "run", lambda self, p: ran.append(p) or real_run(self, p))
    second = run_programs(changed, sandbox=box, workers=2, checkpoint=checkpoint, progress=False)
    assert ran == [changed[3]]
    assert second[7] == first[7] and second[5] == first[5] and second[3].passed


def test_key_depends_on_limits_program_and_verdict(box):
    other = Sandbox("process", limits=Limits(timeout_s=6))
    p = PROGRAMS[7]
    assert program_key(p, box) == program_key(Program(p.code, p.tests), box)
    assert program_key(p, box) != program_key(p, other)
    assert program_key(p, box) != program_key(Program(p.code, p.tests, "x = 1"), box)
    assert program_key(p, box) != program_key(Program(p.code, p.tests, verdict=Verdict.LEGACY), box)


def test_tuple_job_ids_survive_the_checkpoint(box, tmp_path):
    checkpoint = tmp_path / "ckpt.jsonl"
    jobs = {(7, "robust"): PROGRAMS[7], (7, "legacy"): Program(PROGRAMS[7].code, PROGRAMS[7].tests, verdict=Verdict.LEGACY)}
    first = run_programs(jobs, sandbox=box, workers=2, checkpoint=checkpoint, progress=False)
    again = run_programs(jobs, sandbox=Sandbox("process", limits=box.limits), checkpoint=checkpoint, progress=False)
    assert list(again) == list(jobs) and again == first
