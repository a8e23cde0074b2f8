"""The replay stage on the tiny random Gemma-2: files, metadata, resume, settings, and early errors.

The default hook point against the earlier phases' capture is in ``test_hook_point.py``; the
compact feature-layer vectors file's resume rules are in ``test_run_feature_vectors.py``.
"""

from __future__ import annotations

import dataclasses
import logging
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

import artifacts.device
from replay import model as replay_model
from replay import stage as replay_stage
from artifacts.errors import InputError
from artifacts.files import read_json, write_json
from artifacts.records import COMPLETE, is_current, read_record, record_path
from artifacts.schema import activations as keys
from replay.config import ReplayConfig
from replay.generations import read_generations
from replay.model import ModelSpec, model_spec
from replay.stage import default_batch_size
from replay.store import activation_path, read_activations
from replay.verify import load_reference_model, reference_residuals, relative_error
from tests.replay import tolerances as tol
from tests.replay.conftest import copy_stage, replay, replay_config

# Loads the tiny Gemma-2 in Hugging Face and TransformerLens: in `make test`, not the fast lane.
pytestmark = pytest.mark.slow

CONTRACT_KEYS = {
    keys.MODEL, keys.DTYPE, keys.DEVICE, keys.HOOK_POINT, keys.HOOK_POINT_EXPLANATION, keys.HOOK_NAMES, keys.LAYERS,
    keys.D_MODEL, keys.ACTIVATION_FORMAT, keys.N_TASKS, keys.N_TOKENS, keys.WALL_TIME_S, keys.TOKENS_PER_S,
    keys.VERIFY, keys.FEATURE_VECTORS,
}


@pytest.fixture(scope="module")
def post_run(tiny_generations_dir: Path, tmp_path_factory: pytest.TempPathFactory):
    """resid_post at layer 1, a feature list naming layers 0 and 2, batches of 4, verified."""
    stage = copy_stage(tiny_generations_dir, tmp_path_factory.mktemp("post-run") / "phase7_3")
    result = replay(stage, 1, listed=(0, 2), hook_point="resid_post", batch_size=4, verify=2)
    return stage, result


@pytest.fixture(scope="module")
def hf_model(tiny_gemma2: Path):
    return load_reference_model(ModelSpec(str(tiny_gemma2), None, torch.float32, "cpu"))


def test_resid_post_files_and_metadata(post_run, hf_model):
    stage, result = post_run
    tasks = read_generations(stage / "generations.parquet")
    assert result.n_replayed == result.n_tasks == len(tasks) and result.n_skipped == 0
    meta = read_json(result.metadata_path)
    assert CONTRACT_KEYS <= meta.keys()
    assert (meta[keys.HOOK_POINT], meta[keys.LAYERS], meta[keys.D_MODEL], meta[keys.DTYPE]) == ("resid_post", [1], 128, "float32")
    assert meta[keys.HOOK_POINT_EXPLANATION] == keys.HOOK_POINT_EXPLANATIONS["resid_post"]
    assert meta[keys.HOOK_NAMES] == ["blocks.1.hook_resid_post"] and meta[keys.ACTIVATION_FORMAT] == "npz"
    assert meta[keys.FEATURE_VECTORS][keys.FEATURE_VECTORS_LAYERS] == [0, 1, 2] and meta["forward_through_layer"] == 2
    assert meta["n_tokens_replayed"] == sum(t.n_tokens for t in tasks) and meta[keys.TOKENS_PER_S] > 0
    assert meta["transformer_lens_version"] and meta["transformers_version"] and meta["safetensors_version"] is None
    verify = meta[keys.VERIFY]
    assert verify["n_tasks"] == 2 and verify["fidelity"] == 1.0  # the generations are this model's own greedy tokens
    for key in ("max_rel_error", "resid_pre_max_rel_error", "resid_post_max_rel_error", "feature_vectors_max_rel_error"):
        assert verify[key] <= tol.BATCHED, key  # batches of 4 against HF's one-by-one forward

    folder = result.activations_dir / "task_activations"
    assert sorted(p.name for p in folder.iterdir()) == sorted(f"{t.task_id}_layer_1.npz" for t in tasks)
    for task in tasks:
        residuals, _ = reference_residuals(hf_model, task.token_ids)
        stored = read_activations(activation_path(folder, task.task_id, 1))
        assert stored.hook_name == "blocks.1.hook_resid_post"
        np.testing.assert_array_equal(stored.arr_0, stored.resid_post_last)
        np.testing.assert_array_equal(stored.arr_0[0].astype(np.float16), stored.sequence[task.n_prompt_tokens - 1])
        last = task.n_prompt_tokens - 1
        assert relative_error(stored.resid_pre_last[0], residuals[1][last]) <= tol.BATCHED
        assert relative_error(stored.resid_post_last[0], residuals[2][last]) <= tol.BATCHED
        assert relative_error(stored.sequence, residuals[2]) <= tol.FLOAT16_SEQUENCE
    record = read_record(replay_config(stage, 1, listed=(0, 2), hook_point="resid_post"))
    assert record[COMPLETE] is True and record["settings"]["hook_point"] == "resid_post"


def test_rerun_skips_stored_tasks_and_redoes_damaged_ones(stage_dir):
    first = replay(stage_dir, 1, 3, batch_size=4)
    folder = first.activations_dir / "task_activations"
    files = sorted(folder.glob("*.npz"))
    assert len(files) == 2 * first.n_tasks
    mtimes = {p: p.stat().st_mtime_ns for p in [*files, first.feature_vectors_path, first.metadata_path]}
    assert is_current(replay_config(stage_dir, 1, 3, batch_size=4))

    again = replay(stage_dir, 1, 3, batch_size=4)
    assert (again.n_replayed, again.n_skipped, again.n_feature_vectors_replayed) == (0, first.n_tasks, 0)
    assert {p: p.stat().st_mtime_ns for p in mtimes} == mtimes  # nothing rewritten, compact file and metadata included
    assert is_current(replay_config(stage_dir, 1, 3, batch_size=4))
    meta = again.metadata
    assert meta["n_tokens_replayed"] == first.n_tokens_replayed and meta[keys.TOKENS_PER_S] == first.metadata[keys.TOKENS_PER_S]

    tasks = read_generations(stage_dir / "generations.parquet")
    activation_path(folder, tasks[0].task_id, 3).unlink()
    damaged = activation_path(folder, tasks[1].task_id, 1)
    damaged.write_bytes(damaged.read_bytes()[:100])
    assert not is_current(replay_config(stage_dir, 1, 3))  # the outputs changed since the record
    resumed = replay(stage_dir, 1, 3, batch_size=4)
    assert (resumed.n_replayed, resumed.n_skipped) == (2, first.n_tasks - 2)
    assert resumed.n_tokens_replayed == tasks[0].n_tokens + tasks[1].n_tokens
    assert read_activations(damaged).sequence.shape == (tasks[1].n_tokens, 128)

    redone = replay(stage_dir, 1, 3, batch_size=4, overwrite=True)
    assert redone.n_replayed == first.n_tasks
    assert redone.metadata["n_tokens_replayed"] == first.n_tokens_replayed  # --overwrite restarts the sums


def test_changed_generations_redo_only_the_changed_tasks(stage_dir):
    import pandas as pd

    from artifacts.files import write_parquet

    replay(stage_dir, 1)
    df = pd.read_parquet(stage_dir / "generations.parquet")
    changed = int(df["task_id"].iloc[0])
    completions = list(df["completion_token_ids"])
    completions[0] = np.asarray(completions[0][:-1], dtype=np.int32)  # one token fewer
    df["completion_token_ids"] = completions
    write_parquet(stage_dir / "generations.parquet", df)
    again = replay(stage_dir, 1)
    assert (again.n_replayed, again.n_skipped) == (1, len(df) - 1)
    task = next(t for t in read_generations(stage_dir / "generations.parquet") if t.task_id == changed)
    stored = read_activations(activation_path(again.activations_dir / "task_activations", changed, 1))
    np.testing.assert_array_equal(stored.token_ids, task.token_ids)


def test_safetensors_format_alone(stage_dir):
    result = replay(stage_dir, 2, activation_format="safetensors", verify=1)
    folder = result.activations_dir / "task_activations"
    tasks = read_generations(stage_dir / "generations.parquet")
    assert sorted(p.name for p in folder.iterdir()) == sorted(f"{t.task_id}_layer_2.safetensors" for t in tasks)
    meta = result.metadata
    assert meta[keys.ACTIVATION_FORMAT] == "safetensors" and meta["safetensors_version"]
    assert meta[keys.VERIFY]["max_rel_error"] <= tol.SAME_COMPUTATION and meta[keys.VERIFY]["sequence_max_rel_error"] is None
    again = replay(stage_dir, 2, activation_format="safetensors")
    assert (again.n_replayed, again.n_feature_vectors_replayed) == (0, 0)
    # Another format is another output: the record refuses to mix it into this folder.
    with pytest.raises(InputError, match=r"activation_format: 'safetensors' -> 'both'.* pass --overwrite"):
        replay(stage_dir, 2, activation_format="both")
    both = replay(stage_dir, 2, activation_format="both", overwrite=True)
    assert both.n_replayed == len(tasks) and len(list(folder.glob("*.npz"))) == len(list(folder.glob("*.safetensors"))) == len(tasks)


def test_layer_outside_the_model_fails_before_any_work(stage_dir, monkeypatch):
    monkeypatch.setattr(replay_stage, "load_bridge", lambda spec: pytest.fail("model loaded before the layer check"))
    with pytest.raises(InputError, match=r"layer\(s\) \[4\] outside model .* 4 layers"):
        replay(stage_dir, 1, 4)
    assert not (stage_dir / "activations").exists() and not record_path(replay_config(stage_dir, 1, 4)).exists()


def test_other_hook_point_needs_overwrite(stage_dir):
    replay(stage_dir, 1, hook_point="resid_post")
    with pytest.raises(InputError, match=r"hook_point: 'resid_post' -> 'resid_pre'\); pass --overwrite"):
        replay(stage_dir, 1)
    kept = replay(stage_dir, 1, hook_point="resid_post")
    assert kept.n_replayed == 0 and kept.metadata[keys.HOOK_POINT] == "resid_post"
    result = replay(stage_dir, 1, overwrite=True)
    assert result.metadata[keys.HOOK_POINT] == "resid_pre" and result.n_replayed == result.n_tasks
    assert result.metadata["batch_size"] == 1  # the CPU default


def test_output_without_a_record_needs_overwrite(stage_dir):
    # A folder an older version made (no completion record) is not resumed: its settings are unknown.
    config = replay_config(stage_dir, 1)
    replay(stage_dir, 1)
    record_path(config).unlink()
    with pytest.raises(InputError, match="without a completion record.*pass --overwrite"):
        replay(stage_dir, 1)
    assert replay(stage_dir, 1, overwrite=True).n_replayed == 6


def test_other_dtype_needs_overwrite(stage_dir):
    replay(stage_dir, 1)
    with pytest.raises(InputError, match=r"dtype: None -> 'bfloat16'\); pass --overwrite"):
        replay(stage_dir, 1, dtype="bfloat16")


def test_a_default_resolved_otherwise_needs_overwrite(stage_dir):
    # --dtype defaults to the generations' dtype, which the record's settings do not hold.
    replay(stage_dir, 1)
    meta = read_json(stage_dir / "generations_metadata.json")
    write_json(stage_dir / "generations_metadata.json", {**meta, "dtype": "bfloat16"})
    with pytest.raises(InputError, match=r"dtype=float32, not bfloat16 \(the generations changed\); pass --overwrite"):
        replay(stage_dir, 1)
    assert replay(stage_dir, 1, overwrite=True).metadata[keys.DTYPE] == "bfloat16"


def test_default_batch_size_batches_only_float32_on_a_gpu(stage_dir):
    spec = ModelSpec("m", None, torch.float32, "cuda")
    assert default_batch_size(spec) == 8
    assert default_batch_size(dataclasses.replace(spec, dtype=torch.bfloat16)) == 1  # would round differently
    assert default_batch_size(dataclasses.replace(spec, device="cpu")) == 1  # slower batched on CPU
    result = replay(stage_dir, 1, dtype="bfloat16", batch_size=4)
    assert (result.metadata[keys.DTYPE], result.metadata["batch_size"]) == ("bfloat16", 4)


def test_other_model_warns_and_is_recorded(stage_dir, tiny_gemma2, tmp_path, caplog):
    copy = shutil.copytree(tiny_gemma2, tmp_path / "copy-of-tiny")
    with caplog.at_level(logging.WARNING, logger="replay.model"):
        result = replay(stage_dir, 1, model=str(copy))
    assert "differs from the model the generations were made with" in caplog.text
    assert result.metadata[keys.MODEL] == str(copy) and result.metadata["generations_model"] == str(tiny_gemma2)


def test_dtype_and_device_use_the_shared_vocabulary(tiny_gemma2):
    meta = {"model": str(tiny_gemma2), "dtype": "bfloat16"}
    assert model_spec(meta, model=None, dtype=None, device="cpu").dtype == torch.bfloat16
    assert model_spec(meta, model=None, dtype="float32", device="cpu").dtype == torch.float32
    with pytest.raises(InputError, match="pass --dtype"):
        model_spec({"model": str(tiny_gemma2)}, model=None, dtype=None, device="cpu")
    with pytest.raises(InputError, match="--dtype int8: choose one of float32, bfloat16, float16"):
        model_spec(meta, model=None, dtype="int8", device="cpu")
    with pytest.raises(InputError, match="--dtype bf16"):  # no aliases: one vocabulary with generate
        model_spec(meta, model=None, dtype="bf16", device="cpu")
    with pytest.raises(InputError, match="--device tpu: choose one of auto, cpu, cuda"):
        model_spec(meta, model=None, dtype=None, device="tpu")
    assert not hasattr(replay_model, "DTYPES") and not hasattr(replay_model, "DTYPE_NAMES")
    assert replay_model.resolve_device is artifacts.device.resolve_device  # the one copy


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the error on a machine without a CUDA GPU")
def test_cuda_without_gpu_is_an_input_error(tiny_gemma2):
    with pytest.raises(InputError, match="no CUDA GPU"):
        model_spec({"model": str(tiny_gemma2), "dtype": "float32"}, model=None, dtype=None, device="cuda")
    assert model_spec({"model": str(tiny_gemma2), "dtype": "float32"}, model=None, dtype=None, device="auto").device == "cpu"


def test_bad_generation_files_are_input_errors(stage_dir):
    (stage_dir / "generations_metadata.json").unlink()
    with pytest.raises(InputError, match="generations metadata not found"):
        replay(stage_dir, 1)
    write_json(stage_dir / "generations_metadata.json", {"dtype": "float32"})
    with pytest.raises(InputError, match="needs a 'model' key"):
        replay(stage_dir, 1)
    (stage_dir / "generations_metadata.json").write_text("{not json")
    with pytest.raises(InputError, match="not valid JSON"):
        replay(stage_dir, 1)
    with pytest.raises(InputError, match="generations file not found"):
        replay(stage_dir, 1, generations_path=stage_dir / "nope.parquet")


def test_rerun_of_a_finished_stage_reuses_an_equal_or_larger_check(stage_dir):
    first = replay(stage_dir, 1, verify=2)
    assert first.verify is not None
    again = replay(stage_dir, 1, verify=2)
    assert again.n_replayed == 0 and again.verify is None  # no model reloaded for the same files
    assert read_json(again.metadata_path)[keys.VERIFY] == first.metadata[keys.VERIFY]
    assert replay(stage_dir, 1).metadata[keys.VERIFY] == first.metadata[keys.VERIFY]  # kept without --verify
    bigger = replay(stage_dir, 1, verify=3)
    assert bigger.verify is not None and bigger.verify.n_tasks == 3
    # Once a run changes a file, an earlier check no longer describes the folder.
    folder = first.activations_dir / "task_activations"
    next(folder.glob("*.npz")).unlink()
    changed = replay(stage_dir, 1)
    assert changed.n_replayed == 1 and changed.metadata[keys.VERIFY] is None


def test_bad_settings_are_one_line_input_errors():
    cases = {
        "hook_point": ("resid_mid", "--hook-point resid_mid: choose one of resid_pre, resid_post"),
        "activation_format": ("parquet", "--activation-format parquet: choose one of npz, safetensors, both"),
        "dtype": ("int8", "--dtype int8: choose one of float32, bfloat16, float16"),
        "device": ("tpu", "--device tpu: choose one of auto, cpu, cuda"),
        "batch_size": (0, "--batch-size 0: must be at least 1"),
        "verify": (-1, "--verify -1: must be at least 0"),
        "layers": ("a,b", "--layers 'a,b': expected comma-separated integers"),
    }
    for name, (value, message) in cases.items():
        with pytest.raises(InputError, match=message.replace("(", r"\(")):
            ReplayConfig(**{name: value})


def test_every_named_metadata_key_is_written(post_run):
    # Each metadata key artifacts/schema/activations.py names for other stages is in the file replay writes.
    _, result = post_run
    meta = read_json(result.metadata_path)
    other_files = ("FV_", "FEATURE_VECTORS_", "VERIFY_", "NPZ_", "RESID_", "SAFETENSORS_")
    top = {v for k, v in vars(keys).items() if k.isupper() and isinstance(v, str) and not k.startswith(other_files)}
    top -= {keys.FEATURE_VECTORS_FILE, keys.VERSION_SUFFIX}
    assert top <= meta.keys(), top - meta.keys()
    assert {keys.VERIFY_N_TASKS, keys.VERIFY_MAX_REL_ERROR, keys.VERIFY_FIDELITY} <= meta[keys.VERIFY].keys()
    block = meta[keys.FEATURE_VECTORS]
    assert block[keys.FEATURE_VECTORS_FILE_KEY] == keys.FEATURE_VECTORS_FILE and block[keys.FEATURE_VECTORS_N_TASKS] == 6
    assert keys.verify_block(meta) == meta[keys.VERIFY] and keys.verify_block({keys.VERIFY: None}) is None
    assert any(k.endswith(keys.VERSION_SUFFIX) for k in meta)
