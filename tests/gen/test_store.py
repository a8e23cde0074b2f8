"""The output folder: atomic commits, typed and sorted, reloaded by a rerun."""

from __future__ import annotations

from pathlib import Path

import pyarrow.parquet as pq
import pytest

from artifacts.errors import InputError
from artifacts.schema import generations as cols
from gen.store import SCHEMA, GenerationStore


def row(task_id: int, n: int = 2) -> dict:
    return {
        "task_id": task_id,
        "prompt": f"p{task_id}",
        "prompt_token_ids": [2, task_id],
        "completion_token_ids": list(range(n)),
        "completion": "x" * n,
        "finish_reason": "length",
        "n_prompt_tokens": 2,
        "n_completion_tokens": n,
        "generation_time": 0.5,
    }


def started(tmp_path: Path) -> GenerationStore:
    store = GenerationStore(tmp_path)
    assert store.open() is None  # nothing there yet
    store.write_metadata({"n_tasks": 0})
    return store


def test_commits_are_sorted_and_typed(tmp_path: Path) -> None:
    store = started(tmp_path)
    store.commit([row(9), row(3)])
    store.commit([row(5)])
    table = pq.read_table(store.parquet_path)
    assert table.schema.equals(SCHEMA) and tuple(table.column_names) == cols.COLUMNS
    assert table.column("task_id").to_pylist() == [3, 5, 9]
    assert store.done_ids == {3, 5, 9}


def test_recommitting_a_task_is_a_bug(tmp_path: Path) -> None:
    store = started(tmp_path)
    store.commit([row(1)])
    with pytest.raises(ValueError, match="already committed"):
        store.commit([row(1)])


def test_a_rerun_loads_the_committed_rows_and_the_metadata(tmp_path: Path) -> None:
    started(tmp_path).commit([row(1), row(2)])
    again = GenerationStore(tmp_path)
    assert again.open() == {"n_tasks": 0}
    assert again.done_ids == {1, 2}


def test_a_parquet_missing_a_column_is_refused(tmp_path: Path) -> None:
    started(tmp_path).commit([row(1)])
    path = tmp_path / "generations.parquet"
    pq.write_table(pq.read_table(path).drop_columns(["completion"]), path)
    with pytest.raises(InputError, match="missing column.*completion.*--overwrite"):
        GenerationStore(tmp_path).open()


def test_stale_temporary_files_are_removed(tmp_path: Path) -> None:
    store = started(tmp_path)
    stale = tmp_path / ".generations.parquet.abc123.tmp"
    stale.write_bytes(b"half a file")  # what a SIGKILL during a write leaves
    GenerationStore(tmp_path).open()
    assert not stale.exists() and store.metadata_path.exists()
