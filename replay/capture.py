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


@dataclass(frozen=True)
class CapturePlan:
    """What one forward pass keeps.

    ``sequence_layers``: every position at ``site`` (the per-task files). ``last_layers``: the
    last prompt position at both sites (the per-task files' ``resid_*_last`` and the compact
    feature-layer file); it includes ``sequence_layers``. The forward stops after the deepest.
    """

    site: HookSite
    sequence_layers: tuple[int, ...]
    last_layers: tuple[int, ...]
    n_layers: int

    def __post_init__(self) -> None:
        if not set(self.sequence_layers) <= set(self.last_layers):
            raise ValueError(f"last_layers {self.last_layers} must include sequence_layers {self.sequence_layers}")
        if list(self.last_layers) != sorted(set(self.last_layers)) or not self.last_layers:
            raise ValueError(f"last_layers {self.last_layers} must be ascending, unique and not empty")

    @property
    def stop_at(self) -> int:
        """Blocks ``0 .. stop_at - 1`` run."""
        return max(self.last_layers) + 1


@dataclass(frozen=True, eq=False)
class TaskCapture:
    """One task's captured arrays (float32, computed in the replay dtype).

    ``sequence``: layer -> ``(n_tokens, d_model)`` at the plan's site, for ``sequence_layers``.
    ``resid_pre`` / ``resid_post``: ``(len(last_layers), d_model)``, the last prompt position,
    rows in ``last_layers`` order.
    """

    sequence: dict[int, np.ndarray]
    resid_pre: np.ndarray
    resid_post: np.ndarray
    last_layers: tuple[int, ...]

    def last(self, layer: int) -> dict[HookSite, np.ndarray]:
        """Both sites' last-prompt-token vectors ``(d_model,)`` of one layer."""
        row = self.last_layers.index(layer)
        return {HookSite.RESID_PRE: self.resid_pre[row], HookSite.RESID_POST: self.resid_post[row]}


def capture_batch(bridge: Any, batch: Batch, plan: CapturePlan) -> list[TaskCapture]:
    """Residual activations of every task in ``batch``, both sites, from one forward pass.

    Hooks of our own keep, per row, only what the plan asks for: the last prompt position
    (a gather of one row per sequence, so the ``last_layers`` cost ``batch x d_model`` each,
    not a full-sequence cache) and, at ``sequence_layers``, every position at the plan's
    site. The forward stops after the deepest needed block (``stop_at_layer``; after the last
    block of the model, a hook on the final norm's input stops it), so no logits and no
    unused layers are computed.

    Returns:
        One :class:`TaskCapture` per task, in ``batch.tasks`` order.
    """
    device = bridge.cfg.device
    rows = torch.arange(len(batch.tasks), device=device)
    last_positions = torch.tensor([task.n_prompt_tokens - 1 for task in batch.tasks], device=device)
    full: dict[int, torch.Tensor] = {}
    last: dict[tuple[HookSite, int], torch.Tensor] = {}

    def make_hook(site: HookSite, layer: int) -> Any:
        keep_sequence = site is plan.site and layer in plan.sequence_layers

        def keep(tensor: torch.Tensor, *, hook: Any) -> None:
            tensor = tensor[0] if isinstance(tensor, tuple) else tensor
            if keep_sequence:
                full[layer] = tensor.detach().clone()
            last[(site, layer)] = tensor.detach()[rows, last_positions]  # advanced indexing copies

        return keep

    hooks = [(site.hook_name(layer), make_hook(site, layer)) for layer in plan.last_layers for site in HookSite]
    stop_at = plan.stop_at
    with torch.inference_mode(), _stop_at_final_norm(bridge, enabled=stop_at >= plan.n_layers):
        bridge.run_with_hooks(
            batch.input_ids.to(device),
            fwd_hooks=hooks,
            attention_mask=batch.attention_mask.to(device),
            stop_at_layer=stop_at if stop_at < plan.n_layers else None,
            return_type=None,
            # The bridge's config asks for attention weights (its pattern hooks need them);
            # we do not, and keeping them would cost n_layers * heads * len^2 floats.
            output_attentions=False,
        )
    missing = [site.hook_name(layer) for layer in plan.last_layers for site in HookSite if (site, layer) not in last]
    if missing or set(full) != set(plan.sequence_layers):
        raise RuntimeError(f"hooks did not fire: {missing or sorted(set(plan.sequence_layers) - set(full))}")
    per_layer = {layer: full.pop(layer).to("cpu", torch.float32).numpy() for layer in plan.sequence_layers}
    stacked = {
        site: torch.stack([last.pop((site, layer)) for layer in plan.last_layers], dim=1).to("cpu", torch.float32).numpy()
        for site in HookSite
    }
    return [
        TaskCapture(
            sequence={layer: acts[row, : task.n_tokens] for layer, acts in per_layer.items()},
            resid_pre=stacked[HookSite.RESID_PRE][row],
            resid_post=stacked[HookSite.RESID_POST][row],
            last_layers=plan.last_layers,
        )
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
        # The bridge's forward catches this exception and returns its payload.
        raise StopAtLayerException(tensor)

    with bridge.hooks(fwd_hooks=[(FINAL_NORM_HOOK, stop)]):
        yield
