"""The npz files: contract keys, dtypes and shapes, and which files count as finished."""

from __future__ import annotations

import numpy as np

from replay.generations import ReplayTask
from replay.store import activation_path, is_stored, read_activations, write_task_layer

D_MODEL = 8


def _task(task_id: int = 11, n_prompt: int = 3, n_completion: int = 2) -> ReplayTask:
    return ReplayTask(task_id, np.arange(10, 10 + n_prompt + n_completion, dtype=np.int32), n_prompt)


def test_file_holds_the_contract_arrays(tmp_path):
    task = _task()
    acts = np.random.default_rng(0).normal(size=(task.n_tokens, D_MODEL)).astype(np.float32)
    assert write_task_layer(tmp_path, task, 16, acts) == 0
    path = activation_path(tmp_path, task.task_id, 16)
    assert path.name == "11_layer_16.npz"
    stored = read_activations(path)
    assert stored.arr_0.dtype == np.float32 and stored.arr_0.shape == (1, D_MODEL)
    np.testing.assert_array_equal(stored.arr_0[0], acts[task.n_prompt_tokens - 1])  # exact, not rounded
    assert stored.sequence.dtype == np.float16 and stored.sequence.shape == (task.n_tokens, D_MODEL)
    np.testing.assert_array_equal(stored.sequence, acts.astype(np.float16))
    assert stored.token_ids.dtype == np.int32 and stored.token_ids.tolist() == task.token_ids.tolist()
    assert stored.n_prompt_tokens == task.n_prompt_tokens
    assert sorted(np.load(path).files) == ["arr_0", "n_prompt_tokens", "sequence", "token_ids"]
    assert [p.name for p in tmp_path.iterdir()] == [path.name]  # no temporary file left behind


def test_float16_overflow_is_counted(tmp_path):
    task = _task()
    acts = np.zeros((task.n_tokens, D_MODEL), dtype=np.float32)
    acts[0, :3] = 1e5
    assert write_task_layer(tmp_path, task, 0, acts) == 3
    assert read_activations(activation_path(tmp_path, task.task_id, 0)).arr_0.max() == 0.0


def test_is_stored_only_for_complete_matching_files(tmp_path):
    task = _task()
    acts = np.ones((task.n_tokens, D_MODEL), dtype=np.float32)
    write_task_layer(tmp_path, task, 1, acts)
    assert is_stored(tmp_path, task, [1], D_MODEL)
    assert not is_stored(tmp_path, task, [1, 2], D_MODEL)  # a layer missing
    assert not is_stored(tmp_path, task, [1], D_MODEL + 1)  # another model width
    other_tokens = ReplayTask(task.task_id, task.token_ids + 1, task.n_prompt_tokens)
    assert not is_stored(tmp_path, other_tokens, [1], D_MODEL)  # generations changed
    other_split = ReplayTask(task.task_id, task.token_ids, task.n_prompt_tokens + 1)
    assert not is_stored(tmp_path, other_split, [1], D_MODEL)
    path = activation_path(tmp_path, task.task_id, 1)
    path.write_bytes(path.read_bytes()[:-50])  # truncated by a crash outside atomic_path
    assert not is_stored(tmp_path, task, [1], D_MODEL)
