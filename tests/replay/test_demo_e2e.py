"""End to end on the demo model: the session's `run` (real vLLM generation of 8 problems, replay
at batch size 4 with --verify 2) checked against Hugging Face, the compact file and a no-op rerun.
"""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest

from artifacts.files import read_json
from artifacts.schema import activations as keys
from artifacts.feature_list import read_best_layers
from replay.feature_vectors import read_feature_vectors
from replay.generations import read_generations
from replay.store import activation_path, read_activations
from tests.replay import tolerances as tol
from tests.conftest import DEMO_RUN_LAYERS, DEMO_RUN_TASKS, DEMO_RUN_VERIFY

N_TASKS = DEMO_RUN_TASKS
D_MODEL = 576  # SmolLM2-135M


@pytest.mark.slow
def test_replay_of_the_demo_run_matches_hugging_face(demo_run, repo_root, shared_data):
    stage = demo_run.out
    meta = read_json(stage / "activations" / "activations_metadata.json")
    assert meta[keys.LAYERS] == DEMO_RUN_LAYERS and meta[keys.HOOK_POINT] == "resid_pre" and meta[keys.D_MODEL] == D_MODEL
    assert meta[keys.DTYPE] == "float32" and meta[keys.N_TASKS] == N_TASKS and meta[keys.TOKENS_PER_S] > 0
    verify = meta[keys.VERIFY]
    assert verify["n_tasks"] == DEMO_RUN_VERIFY and verify["n_completion_positions"] > 0
    for key in ("max_rel_error", "resid_pre_max_rel_error", "resid_post_max_rel_error", "feature_vectors_max_rel_error"):
        assert verify[key] <= tol.DEMO_BATCHED, key  # the run replays in batches of 4
    # vLLM's float32 greedy tokens are Hugging Face's argmax at every completion position
    # (the demo model is prepared with that check), so the replay reproduces all of them.
    assert verify["fidelity"] == 1.0, verify
    print(f"demo replay: max rel error {verify['max_rel_error']:.2e}, fidelity {verify['fidelity']:.4f}")

    # The compact file: both sites of every layer Phase 2.10's list names, forward through the deepest.
    listed = list(read_best_layers(shared_data / "pva_reference" / "phase2_10" / "top_20_features.json").listed_layers)
    assert listed == [10, 11, 12, 15, 16, 17, 18, 19, 20, 21, 22, 23, 24, 25]
    vectors = read_feature_vectors(stage / "activations" / keys.FEATURE_VECTORS_FILE)
    assert vectors.layers.tolist() == listed and meta["forward_through_layer"] == 25
    assert vectors.resid_pre.shape == vectors.resid_post.shape == (N_TASKS, len(listed), D_MODEL)

    folder = stage / "activations" / "task_activations"
    tasks = read_generations(stage / "generations.parquet")
    assert len(tasks) == N_TASKS and len(list(folder.glob("*.npz"))) == 2 * N_TASKS
    for task in tasks:
        for layer in DEMO_RUN_LAYERS:
            stored = read_activations(activation_path(folder, task.task_id, layer))
            assert stored.arr_0.shape == (1, D_MODEL) and stored.sequence.shape == (task.n_tokens, D_MODEL)
            assert stored.hook_name == f"blocks.{layer}.hook_resid_pre"
            row, column = vectors.task_id.tolist().index(task.task_id), listed.index(layer)
            np.testing.assert_array_equal(vectors.resid_pre[row, column], stored.resid_pre_last[0])
            np.testing.assert_array_equal(vectors.resid_post[row, column], stored.resid_post_last[0])
            assert np.array_equal(stored.token_ids, task.token_ids) and stored.n_prompt_tokens == task.n_prompt_tokens
            assert np.isfinite(stored.sequence).all()

    replay = ["replay-activations", "--data-dir", str(demo_run.data_dir),
              "--phase2-10-dir", str(shared_data / "pva_reference" / "phase2_10")]
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    proc = subprocess.run([sys.executable, "cli.py", *replay], cwd=repo_root, env=env, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert f"replayed 0 of {N_TASKS} tasks ({N_TASKS} already stored)" in proc.stdout
