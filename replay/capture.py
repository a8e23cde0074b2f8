"""Run token ids through the bridge and keep only the residual values that are stored.

Batching is exact for a causal model: sequences are right-padded and masked, so every real
position attends only to real positions before it and keeps its unpadded position id.
Sequences are grouped by length (longest first, so the memory peak comes at the start).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from artifacts.schema.activations import HOOK_POINTS, hook_name
from replay.generations import ReplayTask

PAD_TOKEN_ID = 0  # any valid id: padded positions are masked and never stored
FINAL_NORM_HOOK = "ln_final.hook_in"


@dataclass(frozen=True, eq=False)
class Batch:
    """Right-padded tasks: ``input_ids`` and ``attention_mask`` are int64 ``(batch, max_len)``."""

    tasks: tuple[ReplayTask, ...]
    input_ids: torch.Tensor
    attention_mask: torch.Tensor


def make_batches(tasks: Sequence[ReplayTask], batch_size: int) -> list[Batch]:
    """Group tasks of similar length into right-padded batches of at most ``batch_size``."""
    ordered = sorted(tasks, key=lambda t: (-t.n_tokens, t.task_id))
    batches = []
    for start in range(0, len(ordered), batch_size):
        chunk = tuple(ordered[start : start + batch_size])
        input_ids = torch.full((len(chunk), chunk[0].n_tokens), PAD_TOKEN_ID, dtype=torch.long)
        attention_mask = torch.zeros_like(input_ids)
        for row, task in enumerate(chunk):
            input_ids[row, : task.n_tokens] = torch.from_numpy(task.token_ids.astype(np.int64))
            attention_mask[row, : task.n_tokens] = 1
        batches.append(Batch(chunk, input_ids, attention_mask))
    return batches


@dataclass(frozen=True, eq=False)
class TaskCapture:
    """One task's captured arrays (float32, computed in the replay dtype).

    ``sequence``: layer -> ``(n_tokens, d_model)`` at the chosen site, for the sequence layers.
    ``last``: site -> ``(len(last_layers), d_model)``, the last prompt position, rows in
    ``last_layers`` order.
    """

    sequence: dict[int, np.ndarray]
    last: dict[str, np.ndarray]


def capture_batch(bridge: Any, batch: Batch, *, site: str, sequence_layers: Sequence[int],
                  last_layers: Sequence[int]) -> list[TaskCapture]:
    """Residual activations of every task in ``batch``, both sites, from one forward pass.

    Our hooks keep, per row, the last prompt position at both sites of every ``last_layers``
    layer (a gather: ``batch x d_model`` each, not a full-sequence cache) and every position
    at ``site`` of the ``sequence_layers`` (which ``last_layers`` includes). The forward stops
    after the deepest layer of ``last_layers`` (after the model's last block, a hook on the
    final norm's input stops it), so no logits and no unused layers are computed.

    Returns:
        One :class:`TaskCapture` per task, in ``batch.tasks`` order.
    """
    device = bridge.cfg.device
    rows = torch.arange(len(batch.tasks), device=device)
    last_positions = torch.tensor([task.n_prompt_tokens - 1 for task in batch.tasks], device=device)
    full: dict[int, torch.Tensor] = {}
    last: dict[tuple[str, int], torch.Tensor] = {}

    def make_hook(at: str, layer: int) -> Any:
        keep_sequence = at == site and layer in sequence_layers

        def keep(tensor: torch.Tensor, *, hook: Any) -> None:
            tensor = (tensor[0] if isinstance(tensor, tuple) else tensor).detach()
            if keep_sequence:
                full[layer] = tensor.clone()
            last[(at, layer)] = tensor[rows, last_positions]  # advanced indexing copies

        return keep

    hooks = [(hook_name(at, layer), make_hook(at, layer)) for layer in last_layers for at in HOOK_POINTS]
    stop_at, n_layers = max(last_layers) + 1, bridge.cfg.n_layers
    with torch.inference_mode(), _stop_at_final_norm(bridge, enabled=stop_at >= n_layers):
        bridge.run_with_hooks(
            batch.input_ids.to(device),
            fwd_hooks=hooks,
            attention_mask=batch.attention_mask.to(device),
            stop_at_layer=stop_at if stop_at < n_layers else None,
            return_type=None,
            # The bridge's config asks for attention weights (its pattern hooks need them);
            # we do not, and keeping them would cost n_layers * heads * len^2 floats.
            output_attentions=False,
        )
    if len(last) != len(hooks) or set(full) != set(sequence_layers):
        raise RuntimeError(f"hooks did not fire: {sorted(set(name for name, _ in hooks) - {hook_name(*k) for k in last})}")
    sequence = {layer: full.pop(layer).to("cpu", torch.float32).numpy() for layer in sequence_layers}
    stacked = {at: torch.stack([last.pop((at, layer)) for layer in last_layers], dim=1).to("cpu", torch.float32).numpy()
               for at in HOOK_POINTS}
    return [
        TaskCapture({layer: acts[row, : task.n_tokens] for layer, acts in sequence.items()},
                    {at: stacked[at][row] for at in HOOK_POINTS})
        for row, task in enumerate(batch.tasks)
    ]


@contextlib.contextmanager
def _stop_at_final_norm(bridge: Any, *, enabled: bool) -> Iterator[None]:
    """Abort the forward at the final norm (stop_at_layer cannot stop after the last block)."""
    if not enabled or FINAL_NORM_HOOK not in bridge.hook_dict:
        yield
        return
    from transformer_lens.model_bridge.exceptions import StopAtLayerException

    def stop(tensor: torch.Tensor, *, hook: Any) -> None:
        raise StopAtLayerException(tensor)  # the bridge's forward catches it and returns its payload

    with bridge.hooks(fwd_hooks=[(FINAL_NORM_HOOK, stop)]):
        yield
