"""The replay front door on the tiny random Gemma-2: files, metadata, resume, and early errors."""

from __future__ import annotations

import dataclasses
import logging
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

import replay.run
from artifacts.errors import InputError
from artifacts.files import read_json, write_json
from replay.generations import read_generations
from replay.hook_sites import HookSite
from replay.model import ModelSpec, model_spec
from replay.run import default_batch_size, replay_activations
from replay.store import activation_path, read_activations
from replay.verify import load_reference_model, reference_activations, relative_error
from tests.replay.conftest import layers

ALL_LAYERS = (0, 1, 2, 3)
CONTRACT_KEYS = {"model", "dtype", "device", "hook_point", "layers", "d_model", "n_tasks", "wall_time_s", "tokens_per_s", "verify"}


def _replay(stage: Path, *, best=layers(1, 3), **kwargs):
    return replay_activations(
        generations_path=stage / "generations.parquet", output_dir=stage, best_layers=best, device="cpu", show_progress=False, **kwargs
    )


@pytest.mark.parametrize("site", list(HookSite))
def test_files_match_hugging_face_at_every_layer(stage_dir, site):
    result = _replay(stage_dir, best=layers(*ALL_LAYERS), hook_point=site, batch_size=1, verify=2)
    tasks = read_generations(stage_dir / "generations.parquet")
    assert result.n_replayed == result.n_tasks == len(tasks) and result.n_skipped == 0
    meta = read_json(stage_dir / "activations" / "activations_metadata.json")
    assert CONTRACT_KEYS <= meta.keys() and meta["complete"] is True
    assert (meta["hook_point"], meta["layers"], meta["d_model"], meta["dtype"]) == (site.value, list(ALL_LAYERS), 128, "float32")
    assert meta["n_tokens_replayed"] == sum(t.n_tokens for t in tasks) and meta["tokens_per_s"] > 0
    assert meta["verify"]["n_tasks"] == 2 and meta["verify"]["max_rel_error"] < 1e-5
    assert meta["verify"]["fidelity"] == 1.0  # the generations are this model's own greedy tokens

    reference_model = load_reference_model(_spec(stage_dir))
    folder = result.activations_dir / "task_activations"
    for task in tasks:
        reference, _ = reference_activations(reference_model, task.token_ids, layers=ALL_LAYERS, site=site)
        for layer in ALL_LAYERS:
            stored = read_activations(activation_path(folder, task.task_id, layer))
            assert stored.sequence.shape == (task.n_tokens, 128)
            np.testing.assert_array_equal(stored.arr_0[0].astype(np.float16), stored.sequence[task.n_prompt_tokens - 1])
            assert relative_error(stored.arr_0, reference[layer][task.n_prompt_tokens - 1 : task.n_prompt_tokens]) < 1e-5
            assert relative_error(stored.sequence, reference[layer]) < 2**-10  # float16 rounding


def _spec(stage: Path):
    return model_spec(read_json(stage / "generations_metadata.json"), model=None, dtype=None, device="cpu")


def test_rerun_skips_stored_tasks_and_redoes_damaged_ones(stage_dir):
    first = _replay(stage_dir, batch_size=4)
    folder = first.activations_dir / "task_activations"
    files = sorted(folder.glob("*.npz"))
    assert len(files) == 2 * first.n_tasks
    mtimes = {p: p.stat().st_mtime_ns for p in files}

    again = _replay(stage_dir, batch_size=4)
    assert (again.n_replayed, again.n_skipped) == (0, first.n_tasks)
    assert {p: p.stat().st_mtime_ns for p in files} == mtimes
    meta = again.metadata
    assert meta["n_tokens_replayed"] == first.n_tokens_replayed and meta["tokens_per_s"] == first.metadata["tokens_per_s"]

    tasks = read_generations(stage_dir / "generations.parquet")
    activation_path(folder, tasks[0].task_id, 3).unlink()
    damaged = activation_path(folder, tasks[1].task_id, 1)
    damaged.write_bytes(damaged.read_bytes()[:100])
    resumed = _replay(stage_dir, batch_size=4)
    assert (resumed.n_replayed, resumed.n_skipped) == (2, first.n_tasks - 2)
    assert resumed.n_tokens_replayed == tasks[0].n_tokens + tasks[1].n_tokens
    assert read_activations(damaged).sequence.shape == (tasks[1].n_tokens, 128)

    redone = _replay(stage_dir, batch_size=4, overwrite=True)
    assert redone.n_replayed == first.n_tasks


def test_layer_outside_the_model_fails_before_any_work(stage_dir, monkeypatch):
    monkeypatch.setattr(replay.run, "load_bridge", lambda spec: pytest.fail("model loaded before the layer check"))
    with pytest.raises(InputError, match=r"layer\(s\) \[4\] outside model .* 4 layers"):
        _replay(stage_dir, best=layers(1, 4))
    assert not (stage_dir / "activations").exists()


def test_changed_settings_need_overwrite(stage_dir):
    _replay(stage_dir, hook_point="resid_post")
    with pytest.raises(InputError, match="hook_point=resid_post, not resid_pre.*--overwrite"):
        _replay(stage_dir, hook_point="resid_pre")
    result = _replay(stage_dir, hook_point="resid_pre", overwrite=True)
    assert result.metadata["hook_point"] == "resid_pre" and result.n_replayed == result.n_tasks
    assert result.metadata["batch_size"] == 1  # the CPU default


def test_default_batch_size_batches_only_float32_on_a_gpu(stage_dir):
    spec = ModelSpec("m", None, torch.float32, "cuda")
    assert default_batch_size(spec) == 8
    assert default_batch_size(dataclasses.replace(spec, dtype=torch.bfloat16)) == 1  # would round differently
    assert default_batch_size(dataclasses.replace(spec, device="cpu")) == 1  # slower batched on CPU
    result = _replay(stage_dir, dtype="bfloat16", batch_size=4)
    assert (result.metadata["dtype"], result.metadata["batch_size"]) == ("bfloat16", 4)


def test_other_model_warns_and_is_recorded(stage_dir, tiny_gemma2, tmp_path, caplog):
    copy = shutil.copytree(tiny_gemma2, tmp_path / "copy-of-tiny")
    with caplog.at_level(logging.WARNING, logger="replay.model"):
        result = _replay(stage_dir, model=str(copy))
    assert "differs from the model the generations were made with" in caplog.text
    assert result.metadata["model"] == str(copy) and result.metadata["generations_model"] == str(tiny_gemma2)


def test_dtype_defaults_to_the_generations_dtype(tiny_gemma2):
    meta = {"model": str(tiny_gemma2), "dtype": "bfloat16"}
    assert model_spec(meta, model=None, dtype=None, device="cpu").dtype == torch.bfloat16
    assert model_spec(meta, model=None, dtype="float32", device="cpu").dtype == torch.float32
    with pytest.raises(InputError, match="pass --dtype"):
        model_spec({"model": str(tiny_gemma2)}, model=None, dtype=None, device="cpu")
    with pytest.raises(InputError, match="dtype 'int8'"):
        model_spec(meta, model=None, dtype="int8", device="cpu")


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the error on a machine without a CUDA GPU")
def test_cuda_without_gpu_is_an_input_error(tiny_gemma2):
    with pytest.raises(InputError, match="no CUDA GPU"):
        model_spec({"model": str(tiny_gemma2), "dtype": "float32"}, model=None, dtype=None, device="cuda")
    assert model_spec({"model": str(tiny_gemma2), "dtype": "float32"}, model=None, dtype=None, device="auto").device == "cpu"


def test_bad_generation_files_are_input_errors(stage_dir):
    (stage_dir / "generations_metadata.json").unlink()
    with pytest.raises(InputError, match="generations metadata not found"):
        _replay(stage_dir)
    write_json(stage_dir / "generations_metadata.json", {"dtype": "float32"})
    with pytest.raises(InputError, match="needs a 'model' key"):
        _replay(stage_dir)
    with pytest.raises(InputError, match="generations file not found"):
        replay_activations(generations_path=stage_dir / "nope.parquet", output_dir=stage_dir, best_layers=layers(1))


def test_rerun_of_a_finished_stage_reuses_an_equal_or_larger_check(stage_dir):
    first = _replay(stage_dir, batch_size=1, verify=2)
    assert first.verify is not None
    again = _replay(stage_dir, batch_size=1, verify=2)
    assert again.n_replayed == 0 and again.verify is None  # no model reloaded for the same files
    assert read_json(stage_dir / "activations" / "activations_metadata.json")["verify"] == first.metadata["verify"]
    bigger = _replay(stage_dir, batch_size=1, verify=3)
    assert bigger.verify is not None and bigger.verify.n_tasks == 3
