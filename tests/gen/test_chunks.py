"""Chunking and resume with a scripted engine (the real vLLM runs in the e2e tests)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from gen.chunks import PromptTask, batched, run_chunks, spread_time
from gen.engine import Completion
from gen.store import SETTINGS_KEYS, GenerationStore

SETTINGS = {k: None for k in SETTINGS_KEYS}


class ScriptedEngine:
    """Completes each prompt with ids derived from it; can fail on a given call (a crash)."""

    def __init__(self, fail_on_call: int | None = None) -> None:
        self.calls: list[list[int]] = []
        self.fail_on_call = fail_on_call

    def generate(self, prompts: Sequence[Sequence[int]]) -> list[Completion]:
        if self.fail_on_call is not None and len(self.calls) == self.fail_on_call:
            raise KeyboardInterrupt("killed mid-chunk")
        self.calls.append([p[-1] for p in prompts])
        return [Completion(tuple(range(p[-1] % 5 + 1)), "length") for p in prompts]

    def close(self) -> None:
        pass


def tasks(n: int) -> list[PromptTask]:
    return [PromptTask(task_id=100 + i, prompt=f"p{i}", token_ids=(2, 100 + i)) for i in range(n)]


def open_store(path: Path) -> GenerationStore:
    store = GenerationStore(path)
    store.open(SETTINGS, overwrite=False)
    store.write_metadata({"settings": SETTINGS})
    return store


def test_batched_and_spread() -> None:
    assert [len(c) for c in batched(tasks(7), 3)] == [3, 3, 1]
    with pytest.raises(ValueError):
        list(batched(tasks(2), 0))
    assert spread_time(6.0, [1, 2, 3]) == [1.0, 2.0, 3.0]
    assert spread_time(2.0, [0, 0]) == [1.0, 1.0]


def test_every_chunk_is_one_engine_call_and_one_commit(tmp_path: Path) -> None:
    engine = ScriptedEngine()
    store = open_store(tmp_path)
    stats = run_chunks(tasks=tasks(7), engine=engine, store=store, chunk_size=3, decode=str, progress=False)
    assert [len(c) for c in engine.calls] == [3, 3, 1]
    assert stats.n_tasks == 7 and stats.n_chunks == 3
    table = pq.read_table(store.parquet_path).to_pylist()
    assert [r["task_id"] for r in table] == [100 + i for i in range(7)]
    assert sum(r["n_completion_tokens"] for r in table) == stats.n_completion_tokens
    for r in table:
        assert r["n_completion_tokens"] == len(r["completion_token_ids"]) == r["task_id"] % 5 + 1
        assert r["completion"] == str(r["completion_token_ids"])


def test_generation_time_is_the_chunk_time_spread_by_tokens(tmp_path: Path) -> None:
    store = open_store(tmp_path)
    stats = run_chunks(tasks=tasks(4), engine=ScriptedEngine(), store=store, chunk_size=4, decode=str, progress=False)
    rows = pq.read_table(store.parquet_path).to_pylist()
    assert sum(r["generation_time"] for r in rows) == pytest.approx(stats.generation_time_s)
    per_token = [r["generation_time"] / r["n_completion_tokens"] for r in rows]
    assert max(per_token) == pytest.approx(min(per_token))


def test_a_crash_loses_only_the_chunk_in_flight_and_resume_keeps_chunks(tmp_path: Path) -> None:
    all_tasks = tasks(8)
    crashing = ScriptedEngine(fail_on_call=2)
    with pytest.raises(KeyboardInterrupt):
        run_chunks(tasks=all_tasks, engine=crashing, store=open_store(tmp_path), chunk_size=3, decode=str, progress=False)
    committed = pq.read_table(tmp_path / "generations.parquet").column("task_id").to_pylist()
    assert committed == [100 + i for i in range(6)]  # two whole chunks; the third was in flight

    store = GenerationStore(tmp_path)
    store.open(SETTINGS, overwrite=False)
    pending = [t for t in all_tasks if t.task_id not in store.done_ids]
    resumed = ScriptedEngine()
    run_chunks(tasks=pending, engine=resumed, store=store, chunk_size=3, decode=str, progress=False)
    assert resumed.calls == [[106, 107]]  # the lost chunk, rebuilt with the same tasks

    fresh = ScriptedEngine()
    run_chunks(tasks=all_tasks, engine=fresh, store=open_store(tmp_path / "fresh"), chunk_size=3, decode=str, progress=False)
    assert crashing.calls + resumed.calls == fresh.calls  # same batches as an uninterrupted run
    without_times = [pq.read_table(p / "generations.parquet").drop(["generation_time"]) for p in (tmp_path, tmp_path / "fresh")]
    assert without_times[0].equals(without_times[1])
