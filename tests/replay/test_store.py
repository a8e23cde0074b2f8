"""The per-task files: contract keys, dtypes and shapes, both formats, and which files count as done."""

from __future__ import annotations

import numpy as np
import pytest

from artifacts.layout import activation_file_name
from artifacts.schema.activations import (
    ACTIVATION_FORMATS, HOOK_POINTS, NPZ_KEYS, NPZ_LAST, RESID_POST, RESID_PRE, SAFETENSORS_KEY, hook_name,
)
from replay.generations import ReplayTask
from replay.store import activation_path, is_stored, read_activations, read_safetensors, suffixes, write_task_layer

D_MODEL = 8
PRE, POST = RESID_PRE, RESID_POST


def _task(task_id: int = 11, n_prompt: int = 3, n_completion: int = 2) -> ReplayTask:
    return ReplayTask(task_id, np.arange(10, 10 + n_prompt + n_completion, dtype=np.int32), n_prompt)


def _arrays(task: ReplayTask, seed: int = 0) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """A sequence at the chosen site (resid_pre) and both sites' last-prompt vectors."""
    rng = np.random.default_rng(seed)
    sequence = rng.normal(size=(task.n_tokens, D_MODEL)).astype(np.float32)
    return sequence, {PRE: sequence[task.n_prompt_tokens - 1].copy(), POST: rng.normal(size=D_MODEL).astype(np.float32)}


def _write(folder, task, layer=16, *, site=PRE, fmt="npz", seed=0):
    sequence, last = _arrays(task, seed)
    if site is POST:
        last = {PRE: last[POST], POST: last[PRE]}
    return write_task_layer(folder, task, layer, sequence=sequence, last=last, site=site, fmt=fmt), sequence, last


def test_npz_holds_exactly_the_contract_arrays(tmp_path):
    task = _task()
    n_overflow, sequence, last = _write(tmp_path, task)
    assert n_overflow == 0
    path = activation_path(tmp_path, task.task_id, 16)
    assert path.name == activation_file_name(task.task_id, 16) == "11_layer_16.npz"
    with np.load(path, allow_pickle=False) as npz:  # every key loads without pickle, hook_name included
        assert sorted(npz.files) == sorted(NPZ_KEYS) == sorted(
            ["arr_0", "resid_pre_last", "resid_post_last", "sequence", "token_ids", "n_prompt_tokens", "hook_name"]
        )
        for key in ("arr_0", "resid_pre_last", "resid_post_last"):
            assert npz[key].dtype == np.float32 and npz[key].shape == (1, D_MODEL), key
        assert npz["hook_name"].shape == () and npz["hook_name"].dtype.kind == "U"
        assert str(npz["hook_name"]) == "blocks.16.hook_resid_pre"
        assert npz["n_prompt_tokens"].dtype == np.int64 and npz["n_prompt_tokens"].shape == ()
    stored = read_activations(path)
    np.testing.assert_array_equal(stored.arr_0[0], sequence[task.n_prompt_tokens - 1])  # exact, not rounded
    np.testing.assert_array_equal(stored.resid_pre_last[0], last[PRE])
    np.testing.assert_array_equal(stored.resid_post_last[0], last[POST])
    assert stored.sequence.dtype == np.float16 and stored.sequence.shape == (task.n_tokens, D_MODEL)
    np.testing.assert_array_equal(stored.sequence, sequence.astype(np.float16))
    assert stored.token_ids.dtype == np.int32 and stored.token_ids.tolist() == task.token_ids.tolist()
    assert stored.n_prompt_tokens == task.n_prompt_tokens and stored.hook_name == "blocks.16.hook_resid_pre"
    assert [p.name for p in tmp_path.iterdir()] == [path.name]  # no temporary file left behind


def test_arr_0_is_the_chosen_site_and_must_agree_with_its_last_vector(tmp_path):
    task = _task()
    _, _, last = _write(tmp_path, task, site=POST)
    stored = read_activations(activation_path(tmp_path, task.task_id, 16))
    assert stored.hook_name == "blocks.16.hook_resid_post"
    np.testing.assert_array_equal(stored.arr_0, stored.resid_post_last)
    sequence, last = _arrays(task)
    with pytest.raises(ValueError, match="of one forward pass differ"):
        write_task_layer(tmp_path, task, 1, sequence=sequence, last={PRE: last[POST], POST: last[POST]}, site=PRE)


def test_safetensors_holds_activation_equal_to_arr_0(tmp_path):
    from safetensors import safe_open

    task = _task()
    _write(tmp_path, task, fmt="both")
    path = activation_path(tmp_path, task.task_id, 16, "safetensors")
    assert path.name == activation_file_name(task.task_id, 16, "safetensors") == "11_layer_16.safetensors"
    with safe_open(str(path), framework="numpy") as fh:
        assert list(fh.keys()) == [SAFETENSORS_KEY] == ["activation"]
        assert fh.metadata()["hook_name"] == "blocks.16.hook_resid_pre"
    activation = read_safetensors(path)
    assert activation.dtype == np.float32 and activation.shape == (1, D_MODEL)
    np.testing.assert_array_equal(activation, read_activations(activation_path(tmp_path, task.task_id, 16)).arr_0)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["11_layer_16.npz", "11_layer_16.safetensors"]


def test_safetensors_only_writes_no_npz(tmp_path):
    task = _task()
    assert _write(tmp_path, task, fmt="safetensors")[0] == 0
    assert [p.name for p in tmp_path.iterdir()] == ["11_layer_16.safetensors"]
    assert is_stored(tmp_path, task, [16], "safetensors")
    assert not is_stored(tmp_path, task, [16], "both")


def test_float16_overflow_is_counted(tmp_path):
    task = _task()
    sequence = np.zeros((task.n_tokens, D_MODEL), dtype=np.float32)
    sequence[0, :3] = 1e5
    last = {PRE: sequence[task.n_prompt_tokens - 1], POST: sequence[task.n_prompt_tokens - 1]}
    assert write_task_layer(tmp_path, task, 0, sequence=sequence, last=last, site=PRE) == 3
    assert read_activations(activation_path(tmp_path, task.task_id, 0)).arr_0.max() == 0.0


@pytest.mark.parametrize("fmt", ACTIVATION_FORMATS)
def test_is_stored_only_for_every_file_of_the_current_tokens(tmp_path, fmt):
    # Settings (hook point, model width, format) are the completion record's to check; the
    # files only have to exist and hold the task's current tokens.
    task = _task()
    _write(tmp_path, task, 1, fmt=fmt)
    assert is_stored(tmp_path, task, [1], fmt)
    assert not is_stored(tmp_path, task, [1, 2], fmt)  # a layer missing
    other_tokens = ReplayTask(task.task_id, task.token_ids + 1, task.n_prompt_tokens)
    assert not is_stored(tmp_path, other_tokens, [1], fmt)  # generations changed
    other_split = ReplayTask(task.task_id, task.token_ids, task.n_prompt_tokens + 1)
    assert not is_stored(tmp_path, other_split, [1], fmt)
    for path in tmp_path.iterdir():
        path.write_bytes(path.read_bytes()[:-50])  # damaged outside this tool (every write is atomic)
    assert not is_stored(tmp_path, task, [1], fmt)


def test_format_names_come_from_the_schema():
    assert ACTIVATION_FORMATS == ("npz", "safetensors", "both")
    assert [suffixes(fmt) for fmt in ACTIVATION_FORMATS] == [("npz",), ("safetensors",), ("npz", "safetensors")]
    assert HOOK_POINTS == ("resid_pre", "resid_post") and NPZ_LAST[PRE] == "resid_pre_last"
    assert hook_name(POST, 3) == "blocks.3.hook_resid_post"
