"""The streaming driver with a scripted engine: one submission, commits by count and by time, crashes."""

from __future__ import annotations

from pathlib import Path

import pyarrow.parquet as pq
import pytest

from gen.engine import Completion, EngineConfig
from gen.store import GenerationStore
from gen.stream import PromptTask, StreamStats, run_stream
from tests.gen.scripted_engine import ScriptedEngine



def config(max_new_tokens: int = 6, stops: tuple[int, ...] = ()) -> EngineConfig:
    return EngineConfig(model="m", revision=None, dtype="float32", max_model_len=4096, max_new_tokens=max_new_tokens,
                        stop_token_ids=stops)


def by_length(prompt) -> list[int]:
    """Task 100 + i emits i + 1 ids before its stop id 7: finishes are staggered, one per step."""
    n = prompt[-1] - 100 + 1
    return [50 + prompt[-1] % 40] * n + [7] + [0] * 100


def tasks(n: int) -> list[PromptTask]:
    return [PromptTask(task_id=100 + i, prompt=f"p{i}", token_ids=(2, 100 + i)) for i in range(n)]


def open_store(path: Path) -> GenerationStore:
    store = GenerationStore(path)
    store.open()
    return store


class Clock:
    """A fake monotonic clock: every reading advances it by ``tick`` seconds."""

    def __init__(self, tick: float = 1.0) -> None:
        self.now = 0.0
        self.tick = tick

    def __call__(self) -> float:
        self.now += self.tick
        return self.now


def stored(path: Path) -> list[dict]:
    return pq.read_table(path / "generations.parquet").to_pylist()


def test_every_task_is_submitted_before_the_first_step_and_rows_are_complete(tmp_path: Path) -> None:
    engine = ScriptedEngine(config(max_new_tokens=20, stops=(7,)), script=by_length, max_num_seqs=8)
    store = open_store(tmp_path)
    stats = run_stream(tasks=tasks(5), engine=engine, store=store, decode=str, commit_every=2, progress=False)
    assert engine.added == ["100", "101", "102", "103", "104"]  # request id = str(task_id), all up front
    assert stats.n_tasks == 5 and stats.n_commits == 3  # 2 + 2 + the last one
    rows = stored(tmp_path)
    assert [r["task_id"] for r in rows] == [100, 101, 102, 103, 104]
    for r in rows:
        i = r["task_id"] - 100
        assert r["completion_token_ids"] == [50 + r["task_id"] % 40] * (i + 1) + [7]
        assert r["finish_reason"] == "stop" and r["n_completion_tokens"] == i + 2
        assert r["completion"] == str(r["completion_token_ids"]) and r["prompt_token_ids"] == [2, 100 + i]
    assert stats.n_completion_tokens == sum(r["n_completion_tokens"] for r in rows)


def test_commit_every_batches_commits_and_each_commit_reports(tmp_path: Path) -> None:
    seen: list[StreamStats] = []
    engine = ScriptedEngine(config(max_new_tokens=20, stops=(7,)), script=by_length, max_num_seqs=16)
    run_stream(tasks=tasks(7), engine=engine, store=open_store(tmp_path), decode=str, commit_every=3,
               on_commit=seen.append, progress=False)
    assert [s.n_tasks for s in seen] == [3, 6, 7]
    assert [s.n_commits for s in seen] == [1, 2, 3]


def test_commit_seconds_commits_a_partial_batch(tmp_path: Path) -> None:
    seen: list[StreamStats] = []
    engine = ScriptedEngine(config(max_new_tokens=20, stops=(7,)), script=by_length, max_num_seqs=16)
    # One finish per step and 1 s per clock reading: 2.5 s pass before 16 rows could gather.
    run_stream(tasks=tasks(6), engine=engine, store=open_store(tmp_path), decode=str, commit_every=16,
               commit_seconds=2.5, on_commit=seen.append, progress=False, clock=Clock())
    assert len(seen) > 1 and seen[-1].n_tasks == 6
    assert all(b.n_tasks - a.n_tasks < 16 for a, b in zip(seen, seen[1:]))


def test_generation_time_runs_from_submission_to_the_finishing_step(tmp_path: Path) -> None:
    clock = Clock(tick=1.0)
    engine = ScriptedEngine(config(max_new_tokens=20, stops=(7,)), script=by_length, max_num_seqs=16)
    stats = run_stream(tasks=tasks(3), engine=engine, store=open_store(tmp_path), decode=str, commit_every=1,
                       progress=False, clock=clock)
    times = [r["generation_time"] for r in stored(tmp_path)]
    assert times == sorted(times) and len(set(times)) == 3  # later finishes, longer times; they overlap
    assert stats.engine_time_s >= max(times)  # first submission to last finish
    assert stats.tokens_per_s == pytest.approx(stats.n_completion_tokens / stats.engine_time_s)


def test_requests_beyond_max_num_seqs_wait_inside_the_engine(tmp_path: Path) -> None:
    engine = ScriptedEngine(config(max_new_tokens=3), max_num_seqs=2)
    run_stream(tasks=tasks(5), engine=engine, store=open_store(tmp_path), decode=str, progress=False)
    assert engine.n_steps == 9  # three waves of 3 steps: 2 + 2 + 1 sequences
    assert all(r["finish_reason"] == "length" and r["n_completion_tokens"] == 3 for r in stored(tmp_path))


def test_a_crash_keeps_committed_and_finished_rows_and_resume_matches(tmp_path: Path) -> None:
    all_tasks = tasks(8)
    crashing = ScriptedEngine(config(max_new_tokens=20, stops=(7,)), script=by_length, max_num_seqs=16, fail_at_step=5)
    seen: list[StreamStats] = []
    with pytest.raises(KeyboardInterrupt):
        run_stream(tasks=all_tasks, engine=crashing, store=open_store(tmp_path), decode=str, commit_every=3,
                   on_commit=seen.append, progress=False)
    # Steps 0..4 finished tasks 100..103 (after 2..5 ids); one commit of 3, then the rest on the way out.
    assert [s.n_tasks for s in seen] == [3, 4]
    assert [r["task_id"] for r in stored(tmp_path)] == [100, 101, 102, 103]

    store = GenerationStore(tmp_path)
    store.open()
    pending = [t for t in all_tasks if t.task_id not in store.done_ids]
    resumed = ScriptedEngine(config(max_new_tokens=20, stops=(7,)), script=by_length, max_num_seqs=16)
    run_stream(tasks=pending, engine=resumed, store=store, decode=str, progress=False)
    assert resumed.added == ["104", "105", "106", "107"]

    fresh = tmp_path / "fresh"
    run_stream(tasks=all_tasks, engine=ScriptedEngine(config(max_new_tokens=20, stops=(7,)), script=by_length),
               store=open_store(fresh), decode=str, progress=False)
    without_times = [pq.read_table(p / "generations.parquet").drop(["generation_time"]) for p in (tmp_path, fresh)]
    assert without_times[0].equals(without_times[1])


class _Stray(ScriptedEngine):
    def step(self) -> list[Completion]:
        super().step()
        return [Completion("999", (1,), "stop")]


def test_an_unknown_request_id_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(RuntimeError, match="'999', which is not pending"):
        run_stream(tasks=tasks(2), engine=_Stray(config()), store=open_store(tmp_path), decode=str, progress=False)


def test_bad_commit_settings_and_repeated_ids_are_refused(tmp_path: Path) -> None:
    store = open_store(tmp_path)
    engine = ScriptedEngine(config())
    with pytest.raises(ValueError, match="commit_every"):
        run_stream(tasks=tasks(1), engine=engine, store=store, decode=str, commit_every=0, progress=False)
    with pytest.raises(ValueError, match="commit_seconds"):
        run_stream(tasks=tasks(1), engine=engine, store=store, decode=str, commit_seconds=0, progress=False)
    with pytest.raises(ValueError, match="repeat"):
        run_stream(tasks=tasks(1) * 2, engine=engine, store=store, decode=str, progress=False)
