"""Issue 14's replay part: the compact feature-layer vectors file, its values, and its resume rules."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pytest
import torch

from replay import stage as replay_stage
from artifacts.files import read_json
from artifacts.records import COMPLETE, is_current, read_record
from artifacts.schema import activations as keys
from replay.feature_vectors import PARTS_SUBDIR, read_feature_vectors
from replay.generations import read_generations
from replay.model import ModelSpec
from replay.store import activation_path, read_activations
from replay.verify import load_reference_model, reference_residuals, relative_error
from tests.replay import tolerances as tol
from tests.replay.conftest import replay, replay_config

# Loads the tiny Gemma-2 in Hugging Face and TransformerLens: in `make test`, not the fast lane.
pytestmark = pytest.mark.slow

LISTED = (0, 2)  # a feature list naming layers 0 and 2; --layers 1


def _replay(stage: Path, *, layers=(1,), listed=LISTED, **settings):
    return replay(stage, *layers, listed=listed, **settings)


def _mtimes(folder: Path) -> dict[Path, int]:
    return {p: p.stat().st_mtime_ns for p in folder.iterdir()}


def test_file_holds_both_sites_of_every_listed_layer(stage_dir, tiny_gemma2):
    result = _replay(stage_dir)
    tasks = read_generations(stage_dir / "generations.parquet")
    vectors = read_feature_vectors(stage_dir / "activations" / keys.FEATURE_VECTORS_FILE)
    assert result.feature_vectors_path == stage_dir / "activations" / keys.FEATURE_VECTORS_FILE
    assert vectors.task_id.tolist() == sorted(t.task_id for t in tasks)  # ascending, every task
    assert vectors.layers.tolist() == [0, 1, 2] and vectors.resid_pre.shape == (len(tasks), 3, 128)
    meta = read_json(result.metadata_path)
    assert meta[keys.FEATURE_VECTORS] == {
        "file": keys.FEATURE_VECTORS_FILE, "layers": [0, 1, 2], "n_tasks": len(tasks),
        "listed_layers": [0, 2], "listed_layers_outside_model": [],
    }
    assert meta["forward_through_layer"] == 2  # the deepest listed layer, not the best one
    model = load_reference_model(ModelSpec(str(tiny_gemma2), None, torch.float32, "cpu"))
    folder = result.activations_dir / "task_activations"
    for i, task in enumerate(sorted(tasks, key=lambda t: t.task_id)):
        residuals, _ = reference_residuals(model, task.token_ids)
        last = task.n_prompt_tokens - 1
        for j, layer in enumerate((0, 1, 2)):
            assert relative_error(vectors.resid_pre[i, j], residuals[layer][last]) <= tol.SAME_COMPUTATION
            assert relative_error(vectors.resid_post[i, j], residuals[layer + 1][last]) <= tol.SAME_COMPUTATION
        # The best layer's rows are the per-task file's vectors, bit for bit (one forward pass).
        stored = read_activations(activation_path(folder, task.task_id, 1))
        np.testing.assert_array_equal(vectors.resid_pre[i, 1], stored.resid_pre_last[0])
        np.testing.assert_array_equal(vectors.resid_post[i, 1], stored.resid_post_last[0])


def test_layers_alone_store_just_the_extraction_layers(stage_dir):
    result = _replay(stage_dir, layers=(1, 3), listed=())
    assert read_feature_vectors(result.feature_vectors_path).layers.tolist() == [1, 3]
    assert result.metadata["forward_through_layer"] == 3


def test_listed_layers_outside_the_model_are_left_out_with_a_warning(stage_dir, caplog):
    with caplog.at_level(logging.WARNING, logger="replay.stage"):
        result = _replay(stage_dir, listed=(0, 1, 25))
    assert "names layer(s) [25] outside model" in caplog.text
    assert read_feature_vectors(result.feature_vectors_path).layers.tolist() == [0, 1]
    assert result.metadata[keys.FEATURE_VECTORS]["listed_layers_outside_model"] == [25]


def test_a_crash_loses_at_most_the_batch_in_flight(stage_dir, monkeypatch):
    tasks = read_generations(stage_dir / "generations.parquet")
    real_write = replay_stage.write_task_layer
    calls = {"n": 0}

    def crash_on_third_task(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 3:
            raise KeyboardInterrupt("simulated crash")
        return real_write(*args, **kwargs)

    monkeypatch.setattr(replay_stage, "write_task_layer", crash_on_third_task)
    with pytest.raises(KeyboardInterrupt):
        _replay(stage_dir)
    activations = stage_dir / "activations"
    assert not (activations / keys.FEATURE_VECTORS_FILE).exists()
    assert len(list((activations / PARTS_SUBDIR).glob("part-*.npz"))) == 3  # one per finished or in-flight batch
    config = replay_config(stage_dir, 1, listed=LISTED)
    assert read_record(config)[COMPLETE] is False and not is_current(config)
    assert not (activations / "activations_metadata.json").exists()  # written when the run finishes

    monkeypatch.setattr(replay_stage, "write_task_layer", real_write)
    resumed = _replay(stage_dir)
    assert (resumed.n_replayed, resumed.n_feature_vectors_replayed) == (len(tasks) - 2, 0)
    assert not (activations / PARTS_SUBDIR).exists()
    assert read_feature_vectors(resumed.feature_vectors_path).task_id.tolist() == sorted(t.task_id for t in tasks)
    assert read_record(config)[COMPLETE] is True and is_current(config)


def test_missing_rows_are_refilled_without_touching_the_files(stage_dir):
    first = _replay(stage_dir)
    folder = first.activations_dir / "task_activations"
    files = _mtimes(folder)
    original = read_feature_vectors(first.feature_vectors_path)

    # The per-task files exist but the compact file does not (deleted by hand).
    first.feature_vectors_path.unlink()
    refilled = _replay(stage_dir)
    assert (refilled.n_replayed, refilled.n_feature_vectors_replayed) == (0, first.n_tasks)
    assert _mtimes(folder) == files
    again = read_feature_vectors(first.feature_vectors_path)
    np.testing.assert_array_equal(again.resid_pre, original.resid_pre)  # the same computation, bit for bit
    np.testing.assert_array_equal(again.resid_post, original.resid_post)

    # A finished folder: nothing runs and the compact file is not rewritten.
    stamp = first.feature_vectors_path.stat().st_mtime_ns
    done = _replay(stage_dir)
    assert (done.n_replayed, done.n_feature_vectors_replayed) == (0, 0)
    assert first.feature_vectors_path.stat().st_mtime_ns == stamp

    # Another feature list: the compact file is rebuilt for its layers, the per-task files stay.
    other = _replay(stage_dir, listed=(0, 3))
    assert (other.n_replayed, other.n_feature_vectors_replayed) == (0, first.n_tasks)
    assert read_feature_vectors(first.feature_vectors_path).layers.tolist() == [0, 1, 3]
    assert _mtimes(folder) == files


def test_a_task_removed_from_the_generations_leaves_the_file(stage_dir):
    import pandas as pd

    from artifacts.files import write_parquet

    _replay(stage_dir)
    df = pd.read_parquet(stage_dir / "generations.parquet")
    write_parquet(stage_dir / "generations.parquet", df[df["task_id"] != df["task_id"].max()])
    result = _replay(stage_dir)
    assert (result.n_replayed, result.n_feature_vectors_replayed) == (0, 0)
    assert read_feature_vectors(result.feature_vectors_path).task_id.tolist() == sorted(df["task_id"])[:-1]
