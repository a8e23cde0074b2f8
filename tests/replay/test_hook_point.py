"""Issue 12 §1: the default hook point is the earlier phases' capture, and every file keeps both sites.

The earlier phases (1, 3.5, 3.6 and the earlier 7.3) put a forward *pre*-hook on Hugging Face
decoder layer L and kept ``input[0][:, -1, :]`` on the first forward pass of ``generate``: the
residual stream entering block L at the last prompt token. That capture is rewritten here,
independently of the replay code, and compared with what the replay stores by default.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from artifacts.files import read_json
from artifacts.schema import activations as keys
from replay.generations import read_generations
from replay.store import activation_path, read_activations, read_safetensors
from replay.verify import relative_error
from tests.replay import tolerances as tol
from tests.replay.conftest import copy_stage, replay

# Loads the tiny Gemma-2 in Hugging Face and TransformerLens: in `make test`, not the fast lane.
pytestmark = pytest.mark.slow

N_LAYERS = 4
ALL_LAYERS = tuple(range(N_LAYERS))


@pytest.fixture(scope="module")
def default_run(tiny_generations_dir: Path, tmp_path_factory: pytest.TempPathFactory):
    """One replay with every default (hook point, batch size) at every layer, in both formats, verified."""
    stage = copy_stage(tiny_generations_dir, tmp_path_factory.mktemp("hook-point") / "phase7_3")
    return stage, replay(stage, *ALL_LAYERS, activation_format="both", verify=2)


@pytest.fixture(scope="module")
def reference(tiny_gemma2: Path, tiny_generations_dir: Path) -> dict[int, dict[str, dict[int, np.ndarray]]]:
    """Per task, at the last prompt token, from Hugging Face (eager attention):

    - ``earlier[L]``: the earlier tool's capture, a forward pre-hook on decoder layer ``L``
      keeping ``input[0][:, -1, :]`` on the first forward of ``generate`` (the prompt);
      ``earlier[n_layers]`` is the same hook on the final norm (the last block's output);
    - ``hidden[L]``: ``hidden_states[L]`` of one forward of the replayed ids (prompt +
      completion); ``hidden[n_layers]`` is the final norm's input there (HF's last hidden
      state has the norm applied).
    """
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(tiny_gemma2, dtype=torch.float32, attn_implementation="eager").eval()
    out = {}
    for task in read_generations(tiny_generations_dir / "generations.parquet"):
        earlier = tol.earlier_capture(model, task.token_ids[: task.n_prompt_tokens])
        full = torch.as_tensor(task.token_ids[None], dtype=torch.long)
        norm_input = {}
        handle = model.model.norm.register_forward_pre_hook(lambda _m, inputs: norm_input.update(x=inputs[0]))
        try:
            with torch.inference_mode():
                hidden_states = model(full, output_hidden_states=True).hidden_states
        finally:
            handle.remove()
        last = task.n_prompt_tokens - 1
        hidden = {i: hidden_states[i][0, last].numpy() for i in range(N_LAYERS)}
        hidden[N_LAYERS] = norm_input["x"][0, last].numpy()  # the final norm's input at the last prompt token
        out[task.task_id] = {"earlier": earlier, "hidden": hidden}
    return out


def test_default_arr_0_is_the_earlier_phases_capture(default_run, reference):
    stage, result = default_run
    assert result.metadata[keys.HOOK_POINT] == "resid_pre"
    folder = result.activations_dir / "task_activations"
    worst = {"arr_0 vs earlier": 0.0, "resid_post_last vs earlier L+1": 0.0}
    for task_id, ref in reference.items():
        for layer in ALL_LAYERS:
            stored = read_activations(activation_path(folder, task_id, layer))
            worst["arr_0 vs earlier"] = max(worst["arr_0 vs earlier"], relative_error(stored.arr_0[0], ref["earlier"][layer]))
            worst["resid_post_last vs earlier L+1"] = max(
                worst["resid_post_last vs earlier L+1"], relative_error(stored.resid_post_last[0], ref["earlier"][layer + 1])
            )
            assert stored.hook_name == f"blocks.{layer}.hook_resid_pre"
            np.testing.assert_array_equal(stored.arr_0, stored.resid_pre_last)
            # The earlier capture ran the prompt alone, the replay prompt + completion: the
            # kernels' shapes differ, which rounds differently (tolerances.PROMPT_ONLY).
            assert relative_error(stored.arr_0[0], ref["earlier"][layer]) <= tol.PROMPT_ONLY, (task_id, layer)
            assert relative_error(stored.arr_0[0], ref["hidden"][layer]) <= tol.SAME_COMPUTATION, (task_id, layer)
            # resid_post_last is hidden_states[L + 1] (after the last block: the final norm's input) ...
            assert relative_error(stored.resid_post_last[0], ref["hidden"][layer + 1]) <= tol.SAME_COMPUTATION, (task_id, layer)
            # ... which is the earlier tool's capture one layer deeper (same rounding as above).
            assert relative_error(stored.resid_post_last[0], ref["earlier"][layer + 1]) <= tol.PROMPT_ONLY, (task_id, layer)
            # The check can fail: one block deeper is another vector.
            assert relative_error(stored.resid_post_last[0], ref["earlier"][layer]) > tol.DIFFERENT_VECTOR
    print("worst relative errors against the earlier capture:", {k: f"{v:.2e}" for k, v in worst.items()})


def test_every_new_key_has_its_contract_dtype_and_shape(default_run):
    stage, result = default_run
    folder = result.activations_dir / "task_activations"
    for task in read_generations(stage / "generations.parquet"):
        for layer in ALL_LAYERS:
            with np.load(activation_path(folder, task.task_id, layer), allow_pickle=False) as npz:
                assert sorted(npz.files) == sorted(
                    ["arr_0", "resid_pre_last", "resid_post_last", "sequence", "token_ids", "n_prompt_tokens", "hook_name"]
                )
                for key in ("arr_0", "resid_pre_last", "resid_post_last"):
                    assert (npz[key].dtype, npz[key].shape) == (np.float32, (1, 128)), key
                assert (npz["sequence"].dtype, npz["sequence"].shape) == (np.float16, (task.n_tokens, 128))
                assert npz["hook_name"].shape == () and npz["hook_name"].dtype.kind == "U"
                np.testing.assert_array_equal(npz["arr_0"][0].astype(np.float16), npz["sequence"][task.n_prompt_tokens - 1])
                # Same forward pass: the safetensors activation is arr_0 bit for bit.
                safetensors = read_safetensors(activation_path(folder, task.task_id, layer, "safetensors"))
                np.testing.assert_array_equal(safetensors, npz["arr_0"])


def test_metadata_records_and_explains_the_hook_point(default_run):
    stage, result = default_run
    meta = read_json(result.metadata_path)
    assert meta[keys.HOOK_POINT] == "resid_pre" and meta[keys.ACTIVATION_FORMAT] == "both"
    assert meta[keys.HOOK_POINT_EXPLANATION] == keys.HOOK_POINT_EXPLANATIONS["resid_pre"]
    assert "hidden_states[L]" in meta[keys.HOOK_POINT_EXPLANATION] and "pre-hook" in meta[keys.HOOK_POINT_EXPLANATION]
    assert meta[keys.HOOK_NAMES] == [f"blocks.{layer}.hook_resid_pre" for layer in ALL_LAYERS]
    assert keys.hook_point_explanation(meta) == meta[keys.HOOK_POINT_EXPLANATION]
    assert keys.hook_point_explanation({keys.HOOK_POINT: "resid_post"}) == keys.HOOK_POINT_EXPLANATIONS["resid_post"]


def test_verify_checks_both_hook_points(default_run):
    _, result = default_run
    verify = result.metadata[keys.VERIFY]
    assert verify["n_tasks"] == 2 and verify["fidelity"] == 1.0  # the model's own greedy tokens
    for key in ("max_rel_error", "resid_pre_max_rel_error", "resid_post_max_rel_error", "feature_vectors_max_rel_error"):
        assert verify[key] <= tol.SAME_COMPUTATION, key  # batch 1: the reference's own computation
    assert verify["sequence_max_rel_error"] <= tol.FLOAT16_SEQUENCE
