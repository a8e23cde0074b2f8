"""Run token ids through the bridge and capture only the residual hooks that are stored.

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

from replay.generations import ReplayTask
from replay.hook_sites import HookSite

PAD_TOKEN_ID = 0  # any valid id: padded positions are masked and never stored
FINAL_NORM_HOOK = "ln_final.hook_in"


@dataclass(frozen=True, eq=False)
class Batch:
    """Right-padded tasks: ``input_ids`` and ``attention_mask`` are int64 ``(batch, max_len)``."""

    tasks: tuple[ReplayTask, ...]
    input_ids: torch.Tensor
    attention_mask: torch.Tensor

    @property
    def n_tokens(self) -> int:
        return sum(task.n_tokens for task in self.tasks)


def make_batches(tasks: Sequence[ReplayTask], batch_size: int) -> list[Batch]:
    """Group tasks of similar length into right-padded batches of at most ``batch_size``."""
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    ordered = sorted(tasks, key=lambda t: (-t.n_tokens, t.task_id))
    return [_pad(ordered[i : i + batch_size]) for i in range(0, len(ordered), batch_size)]


def _pad(tasks: Sequence[ReplayTask]) -> Batch:
    width = max(task.n_tokens for task in tasks)
    input_ids = torch.full((len(tasks), width), PAD_TOKEN_ID, dtype=torch.long)
    attention_mask = torch.zeros((len(tasks), width), dtype=torch.long)
    for row, task in enumerate(tasks):
        input_ids[row, : task.n_tokens] = torch.from_numpy(task.token_ids.astype(np.int64))
        attention_mask[row, : task.n_tokens] = 1
    return Batch(tuple(tasks), input_ids, attention_mask)


def capture_batch(
    bridge: Any, batch: Batch, *, layers: Sequence[int], site: HookSite, n_layers: int
) -> list[dict[int, np.ndarray]]:
    """Residual activations of every task in ``batch`` at ``layers``.

    Only the needed hooks are cached (``names_filter``) and the forward stops after the last
    needed block (``stop_at_layer``; after the last block of the model, a hook on the final
    norm's input stops it), so no logits and no unused layers are computed.

    Returns:
        Per task, in ``batch.tasks`` order: layer -> float32 array ``(n_tokens, d_model)``.
    """
    names = [site.hook_name(layer) for layer in layers]
    stop_at = max(layers) + 1
    device = bridge.cfg.device
    with torch.inference_mode(), _stop_at_final_norm(bridge, enabled=stop_at >= n_layers):
        _, cache = bridge.run_with_cache(
            batch.input_ids.to(device),
            attention_mask=batch.attention_mask.to(device),
            names_filter=names,
            stop_at_layer=stop_at if stop_at < n_layers else None,
            # The bridge's config asks for attention weights (its pattern hooks need them);
            # we do not, and keeping them would cost n_layers * heads * len^2 floats.
            output_attentions=False,
        )
        per_layer = {layer: cache[name].to("cpu", torch.float32).numpy() for layer, name in zip(layers, names)}
    del cache
    return [{layer: acts[row, : task.n_tokens] for layer, acts in per_layer.items()} for row, task in enumerate(batch.tasks)]


@contextlib.contextmanager
def _stop_at_final_norm(bridge: Any, *, enabled: bool) -> Iterator[None]:
    """Abort the forward at the final norm (stop_at_layer cannot stop after the last block)."""
    if not enabled or FINAL_NORM_HOOK not in bridge.hook_dict:
        yield
        return
    from transformer_lens.model_bridge.exceptions import StopAtLayerException

    def stop(tensor: torch.Tensor, *, hook: Any) -> None:
        # The bridge's forward catches this exception and returns its payload.
        raise StopAtLayerException(tensor)

    with bridge.hooks(fwd_hooks=[(FINAL_NORM_HOOK, stop)]):
        yield
