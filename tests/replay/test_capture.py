"""Capture on the tiny random Gemma-2: TransformerLens hooks equal Hugging Face hidden states at
both sites, batching is exact, last-prompt vectors are each row's own, and no layer past the
deepest needed one runs."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest
import torch

from artifacts.schema.activations import HOOK_POINTS, RESID_POST, RESID_PRE
from replay.capture import capture_batch, make_batches
from replay.generations import ReplayTask, read_generations
from replay.model import ModelSpec, load_bridge, read_model_shape
from replay.verify import hidden_index, load_reference_model, reference_residuals, relative_error
from tests.replay import tolerances as tol

# Loads the tiny Gemma-2 in Hugging Face and TransformerLens: in `make test`, not the fast lane.
pytestmark = pytest.mark.slow

N_LAYERS = 4


@pytest.fixture(scope="module")
def spec(tiny_gemma2: Path) -> ModelSpec:
    return ModelSpec(name=str(tiny_gemma2), revision=None, dtype=torch.float32, device="cpu")


@pytest.fixture(scope="module")
def bridge(spec: ModelSpec):
    return load_bridge(spec)


@pytest.fixture(scope="module")
def tasks(tiny_generations_dir: Path) -> list[ReplayTask]:
    return read_generations(tiny_generations_dir / "generations.parquet")


def _plan(layers, site, last_layers=None) -> dict:
    return {"site": site, "sequence_layers": tuple(layers), "last_layers": tuple(last_layers or layers)}


def _last(capture, layer, at, last_layers):
    """One site's last-prompt-token vector of ``layer``."""
    return capture.last[at][list(last_layers).index(layer)]


def _captures(bridge, tasks, *, layers, site, batch_size, last_layers=None):
    plan = _plan(layers, site, last_layers)
    return {
        task.task_id: capture
        for batch in make_batches(tasks, batch_size)
        for task, capture in zip(batch.tasks, capture_batch(bridge, batch, **plan))
    }


def _capture_all(bridge, tasks, *, layers, site, batch_size) -> dict[int, dict[int, np.ndarray]]:
    captures = _captures(bridge, tasks, layers=layers, site=site, batch_size=batch_size)
    return {task_id: capture.sequence for task_id, capture in captures.items()}


def test_tiny_model_loads_with_eager_attention(bridge, spec):
    assert bridge.original_model.config._attn_implementation == "eager"
    assert read_model_shape(spec).n_layers == N_LAYERS == bridge.cfg.n_layers


@pytest.fixture(scope="module")
def reference_model(spec: ModelSpec):
    return load_reference_model(spec)


@pytest.mark.parametrize("site", HOOK_POINTS)
def test_every_layer_equals_hugging_face_hidden_states(bridge, reference_model, tasks, site):
    layers = list(range(N_LAYERS))
    captured = _captures(bridge, tasks, layers=layers, site=site, batch_size=1)
    for task in tasks:
        capture = captured[task.task_id]
        residuals, _ = reference_residuals(reference_model, task.token_ids)
        for at in HOOK_POINTS:
            for layer in layers:
                reference = residuals[hidden_index(at, layer)]
                if at == site:
                    err = relative_error(capture.sequence[layer], reference)
                    assert err <= tol.SAME_COMPUTATION, (site, task.task_id, layer, err)
                    # The last-prompt vector and the sequence row are copies of one tensor.
                    np.testing.assert_array_equal(_last(capture, layer, at, layers), capture.sequence[layer][task.n_prompt_tokens - 1])
                err = relative_error(_last(capture, layer, at, layers), reference[task.n_prompt_tokens - 1])
                assert err <= tol.SAME_COMPUTATION, (at, task.task_id, layer, err)


def test_last_vectors_are_each_rows_own_last_prompt_position(bridge, tasks):
    # Rows of one batch differ in length and prompt length: each keeps its own position.
    every = _captures(bridge, tasks, layers=range(N_LAYERS), site=RESID_PRE, batch_size=1)
    batched = _captures(bridge, tasks, layers=[1], site=RESID_PRE, batch_size=len(tasks), last_layers=[0, 1, 2])
    for task in tasks:
        got = batched[task.task_id]
        assert got.last[RESID_PRE].shape == got.last[RESID_POST].shape == (3, 128) and set(got.sequence) == {1}
        for row, layer in enumerate((0, 1, 2)):
            one = every[task.task_id].sequence
            assert relative_error(got.last[RESID_PRE][row], one[layer][task.n_prompt_tokens - 1]) <= tol.BATCHED
            assert relative_error(got.last[RESID_POST][row], one[layer + 1][task.n_prompt_tokens - 1]) <= tol.BATCHED


def test_no_full_sequence_cache_is_used(bridge, tasks, monkeypatch):
    monkeypatch.setattr(bridge, "run_with_cache", lambda *a, **k: pytest.fail("run_with_cache caches every position"))
    batch = make_batches(tasks[:2], 2)[0]
    captures = capture_batch(bridge, batch, **_plan([], RESID_PRE, last_layers=[0, 3]))
    assert [c.sequence for c in captures] == [{}, {}] and captures[0].last[RESID_POST].shape == (2, 128)


def test_resid_post_of_last_layer_is_before_the_final_norm(bridge, reference_model, tasks):
    # Hugging Face's last hidden state has the final norm applied; the hook must not.
    task = tasks[0]
    last = N_LAYERS - 1
    captured = _capture_all(bridge, [task], layers=[last], site=RESID_POST, batch_size=1)[task.task_id][last]
    model = reference_model
    with torch.inference_mode():
        normed = model(torch.as_tensor(task.token_ids[None], dtype=torch.long), output_hidden_states=True).hidden_states[-1]
    assert relative_error(captured, normed[0].numpy()) > tol.DIFFERENT_VECTOR


def test_batched_equals_one_by_one(bridge, tasks):
    assert len({t.n_tokens for t in tasks}) == len(tasks)  # every row of a batch is padded but one
    layers = [0, 2, 3]
    one = _capture_all(bridge, tasks, layers=layers, site=RESID_POST, batch_size=1)
    batched = _capture_all(bridge, tasks, layers=layers, site=RESID_POST, batch_size=len(tasks))
    for task in tasks:
        for layer in layers:
            assert batched[task.task_id][layer].shape == (task.n_tokens, 128)
            # Equal up to float32 rounding of differently shaped kernels, which this random,
            # chaotic model amplifies about 10x per block (tolerances.BATCHED).
            assert relative_error(batched[task.task_id][layer], one[task.task_id][layer]) <= tol.BATCHED


def test_padding_does_not_leak_into_real_positions(bridge, tasks):
    # Same shapes, different pad ids: real positions must be bit-identical (no rounding excuse).
    batch = make_batches(tasks, len(tasks))[0]
    other_pad = dataclasses.replace(batch, input_ids=batch.input_ids.masked_fill(batch.attention_mask == 0, 7))
    plan = _plan([0, 3], RESID_PRE)
    for a, b in zip(capture_batch(bridge, batch, **plan), capture_batch(bridge, other_pad, **plan)):
        for layer in (0, 3):
            np.testing.assert_array_equal(a.sequence[layer], b.sequence[layer])
        np.testing.assert_array_equal(a.last[RESID_POST], b.last[RESID_POST])


def test_make_batches_groups_by_length_longest_first(tasks):
    batches = make_batches(tasks, 4)
    assert [len(b.tasks) for b in batches] == [4, 2]
    lengths = [t.n_tokens for b in batches for t in b.tasks]
    assert lengths == sorted(lengths, reverse=True)
    first = batches[0]
    assert first.input_ids.shape == first.attention_mask.shape == (4, lengths[0])
    for row, task in enumerate(first.tasks):
        assert first.attention_mask[row].sum().item() == task.n_tokens
        assert first.input_ids[row, : task.n_tokens].tolist() == task.token_ids.tolist()
    with pytest.raises(ValueError):
        make_batches(tasks, 0)


@pytest.mark.parametrize(("layers", "last_layers"), [([1], [1]), ([0, 3], [0, 3]), ([1], [0, 1, 2])])
def test_forward_stops_after_the_last_needed_layer(bridge, tasks, layers, last_layers):
    fired: list[str] = []

    def record(tensor, *, hook):
        fired.append(hook.name)

    watched = [f"blocks.{layer}.attn.hook_in" for layer in range(N_LAYERS)] + ["ln_final.hook_out", "unembed.hook_in"]
    batch = make_batches(tasks[:2], 2)[0]
    with bridge.hooks(fwd_hooks=[(name, record) for name in watched]):
        capture_batch(bridge, batch, **_plan(layers, RESID_POST, last_layers))
    ran = {int(name.split(".")[1]) for name in fired if name.startswith("blocks.")}
    assert ran == set(range(max(last_layers) + 1))
    assert "ln_final.hook_out" not in fired and "unembed.hook_in" not in fired
