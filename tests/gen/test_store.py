"""The output folder: atomic chunk commits, resume under the same settings, refusal otherwise."""

from __future__ import annotations

from pathlib import Path

import pyarrow.parquet as pq
import pytest

from artifacts.errors import InputError
from gen.store import SCHEMA, SETTINGS_KEYS, GenerationStore

SETTINGS = {k: None for k in SETTINGS_KEYS} | {"model_path": "/m", "prompt_style": "raw", "max_new_tokens": 8}


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


def started(tmp_path: Path, settings: dict = SETTINGS) -> GenerationStore:
    store = GenerationStore(tmp_path)
    store.open(settings, overwrite=False)
    store.write_metadata({"settings": settings})
    return store


def test_commits_are_sorted_and_typed(tmp_path: Path) -> None:
    store = started(tmp_path)
    store.commit([row(9), row(3)])
    store.commit([row(5)])
    table = pq.read_table(store.parquet_path)
    assert table.schema.equals(SCHEMA)
    assert table.column("task_id").to_pylist() == [3, 5, 9]
    assert store.done_ids == {3, 5, 9}


def test_recommitting_a_task_is_a_bug(tmp_path: Path) -> None:
    store = started(tmp_path)
    store.commit([row(1)])
    with pytest.raises(ValueError, match="already committed"):
        store.commit([row(1)])


def test_resume_with_same_settings_loads_rows(tmp_path: Path) -> None:
    started(tmp_path).commit([row(1), row(2)])
    again = GenerationStore(tmp_path)
    meta = again.open(dict(SETTINGS), overwrite=False)
    assert meta == {"settings": SETTINGS}
    assert again.done_ids == {1, 2}


@pytest.mark.parametrize(("key", "value"), [("prompt_style", "chat"), ("model_path", "/other"), ("dtype", "bfloat16")])
def test_other_settings_are_refused(tmp_path: Path, key: str, value: str) -> None:
    started(tmp_path).commit([row(1)])
    with pytest.raises(InputError, match=rf"other settings \({key}: .*--overwrite"):
        GenerationStore(tmp_path).open(SETTINGS | {key: value}, overwrite=False)


def test_overwrite_discards_rows(tmp_path: Path) -> None:
    started(tmp_path).commit([row(1)])
    store = GenerationStore(tmp_path)
    assert store.open(SETTINGS | {"prompt_style": "chat"}, overwrite=True) is None
    assert store.done_ids == set() and not store.parquet_path.exists()


def test_rows_without_metadata_are_refused(tmp_path: Path) -> None:
    started(tmp_path).commit([row(1)])
    (tmp_path / "generations_metadata.json").unlink()
    with pytest.raises(InputError, match="settings are unknown"):
        GenerationStore(tmp_path).open(SETTINGS, overwrite=False)


def test_stale_temporary_files_are_removed(tmp_path: Path) -> None:
    store = started(tmp_path)
    stale = tmp_path / ".generations.parquet.abc123.tmp"
    stale.write_bytes(b"half a file")  # what a SIGKILL during a write leaves
    GenerationStore(tmp_path).open(SETTINGS, overwrite=False)
    assert not stale.exists() and store.metadata_path.exists()
