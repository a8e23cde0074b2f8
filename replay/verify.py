"""``--verify N``: check stored activations against Hugging Face, and the replay's fidelity.

For N sampled tasks, one Hugging Face forward (eager attention, same dtype and device) of the
same token ids gives

(a) the reference residual stream at both hook points (:func:`reference_residuals`). The error
    of a vector is ``||stored - ref||_2 / ||ref||_2``; ``max_rel_error`` is the largest over
    the chosen hook point's float32 last-prompt vectors of the per-task files (``arr_0`` and
    the safetensors ``activation``: what downstream reads); ``resid_pre_max_rel_error`` and
    ``resid_post_max_rel_error`` over every stored last-prompt vector at that site (per-task
    files and the compact file); ``feature_vectors_max_rel_error`` over the compact file alone;
    ``sequence_max_rel_error`` over every position of the float16 ``sequence`` (bounded below
    by float16 rounding, about 2**-11 = 4.9e-4, not by the replay);
(b) replay fidelity: the fraction of completion positions whose argmax next token is the
    token vLLM generated. Logits are computed only at those positions and in chunks, since
    Gemma's vocabulary has 256k entries.

Hugging Face's model is loaded independently of the bridge, so a wrong hook, layer offset,
token id or batching bug shows up as a large error.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm.auto import tqdm

from artifacts.schema.activations import HOOK_POINTS, NPZ_LAST, RESID_POST, RESID_PRE
from replay.feature_vectors import read_feature_vectors
from replay.generations import ReplayTask
from replay.model import ModelSpec
from replay.store import activation_path, read_activations, read_safetensors, suffixes

LOGIT_CHUNK = 256  # completion positions per lm_head call: 256 x 256k float32 logits = 256 MiB
SEED = 0  # of the task sample (recorded in the verify block)


@dataclass(frozen=True)
class VerifyResult:
    """Outcome of ``--verify`` (the ``verify`` block of ``activations_metadata.json``)."""

    n_tasks: int
    task_ids: tuple[int, ...]
    seed: int
    max_rel_error: float
    resid_pre_max_rel_error: float
    resid_post_max_rel_error: float
    feature_vectors_max_rel_error: float | None  # None when no compact file was checked
    sequence_max_rel_error: float | None  # None without .npz files
    fidelity: float | None  # None when the sampled tasks have no completion tokens
    n_completion_positions: int
    n_argmax_matches: int

    def to_metadata(self) -> dict[str, Any]:
        return {**asdict(self), "task_ids": list(self.task_ids)}


def hidden_index(site: str, layer: int) -> int:
    """Index of ``site`` at ``layer`` in :func:`reference_residuals`: resid_pre L is Hugging Face
    ``hidden_states[L]``, resid_post L is ``hidden_states[L + 1]``."""
    return layer + 1 if site == RESID_POST else layer


def load_reference_model(spec: ModelSpec) -> Any:
    """The plain Hugging Face causal LM, eager attention, in ``spec``'s dtype and device."""
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(spec.name, revision=spec.revision, dtype=spec.dtype, attn_implementation="eager")
    return model.to(spec.device).eval()


def verify_activations(*, spec: ModelSpec, tasks: Sequence[ReplayTask], folder: Path, layers: Sequence[int], site: str,
                       n: int, fmt: str = "npz", feature_vectors_path: Path | None = None,
                       show_progress: bool = True) -> VerifyResult:
    """Compare the stored files of ``n`` tasks sampled from ``tasks`` with Hugging Face (see the
    module docstring): the per-task files in ``folder`` at ``layers`` (``arr_0`` at ``site``),
    and the compact file at ``feature_vectors_path`` when it exists."""
    sample = sorted(random.Random(SEED).sample(list(tasks), min(n, len(tasks))), key=lambda t: t.task_id)
    compact = read_feature_vectors(feature_vectors_path) if feature_vectors_path and Path(feature_vectors_path).exists() else None
    worst: dict[str, float] = {}  # the largest error per check, absent until one is seen

    def bump(key: str, stored: np.ndarray, reference: np.ndarray) -> None:
        worst[key] = max(worst.get(key, 0.0), relative_error(stored, reference))

    model = load_reference_model(spec)
    n_positions = n_matches = 0
    for task in tqdm(sample, desc="verify", unit="task", disable=not show_progress):
        residuals, final_hidden = reference_residuals(model, task.token_ids)
        last = task.n_prompt_tokens - 1
        for layer in layers:
            ref = residuals[hidden_index(site, layer)]
            if "npz" in suffixes(fmt):
                stored = read_activations(activation_path(folder, task.task_id, layer))
                bump("chosen", stored.arr_0[0], ref[last])
                for at in HOOK_POINTS:
                    bump(at, getattr(stored, NPZ_LAST[at])[0], residuals[hidden_index(at, layer)][last])
                bump("sequence", stored.sequence, ref)
            if "safetensors" in suffixes(fmt):
                activation = read_safetensors(activation_path(folder, task.task_id, layer, "safetensors"))
                bump("chosen", activation[0], ref[last])
                bump(site, activation[0], ref[last])
        if compact is not None and task.task_id in compact.task_id:  # the compact file's row, both sites
            row = int(np.flatnonzero(compact.task_id == task.task_id)[0])
            for at, vectors in zip(HOOK_POINTS, (compact.resid_pre, compact.resid_post)):
                for i, layer in enumerate(compact.layers.tolist()):
                    bump(at, vectors[row, i], residuals[hidden_index(at, layer)][last])
                    bump("compact", vectors[row, i], residuals[hidden_index(at, layer)][last])
        predicted = completion_argmax(model, final_hidden, n_prompt_tokens=task.n_prompt_tokens)
        n_positions += predicted.size
        n_matches += int(np.count_nonzero(predicted == task.token_ids[task.n_prompt_tokens :]))
    return VerifyResult(
        n_tasks=len(sample), task_ids=tuple(t.task_id for t in sample), seed=SEED,
        max_rel_error=worst.get("chosen", 0.0), resid_pre_max_rel_error=worst.get(RESID_PRE, 0.0),
        resid_post_max_rel_error=worst.get(RESID_POST, 0.0), feature_vectors_max_rel_error=worst.get("compact"),
        sequence_max_rel_error=worst.get("sequence"), fidelity=n_matches / n_positions if n_positions else None,
        n_completion_positions=n_positions, n_argmax_matches=n_matches,
    )


def reference_residuals(model: Any, token_ids: np.ndarray) -> tuple[np.ndarray, torch.Tensor]:
    """Hugging Face's residual stream at every block boundary, and the final normed hidden state.

    Returns:
        float32 ``(n_layers + 1, n_tokens, d_model)``: entry ``L`` is the input of block ``L``
        (``hidden_states[L]``), entry ``n_layers`` the output of the last block before the
        final norm (Hugging Face's last hidden state has it applied); and the normed hidden
        state ``(n_tokens, d_model)`` the unembedding reads.
    """
    decoder = model.get_decoder()
    n_layers = model.config.get_text_config().num_hidden_layers
    captured: dict[str, torch.Tensor] = {}
    ids = torch.as_tensor(token_ids, dtype=torch.long, device=model.device)[None]
    handle = decoder.norm.register_forward_pre_hook(lambda _module, args: captured.update(pre_norm=args[0]))
    try:
        with torch.inference_mode():
            out = decoder(input_ids=ids, output_hidden_states=True)
    finally:
        handle.remove()
    stack = [*out.hidden_states[:n_layers], captured["pre_norm"]]
    return torch.stack([h[0] for h in stack]).to("cpu", torch.float32).numpy(), out.last_hidden_state[0]


def completion_argmax(model: Any, final_hidden: torch.Tensor, *, n_prompt_tokens: int) -> np.ndarray:
    """Greedy next token at each completion position: position ``p`` predicts token ``p + 1``,
    so positions ``n_prompt_tokens - 1 .. n_tokens - 2`` predict the completion."""
    head = model.get_output_embeddings()
    softcap = getattr(model.config.get_text_config(), "final_logit_softcapping", None)
    positions = final_hidden[n_prompt_tokens - 1 : -1]
    picks = []
    with torch.inference_mode():
        for start in range(0, positions.shape[0], LOGIT_CHUNK):
            logits = head(positions[start : start + LOGIT_CHUNK])
            if softcap:  # as the model's own forward does (vLLM's argmax is over capped logits)
                logits = torch.tanh(logits / softcap) * softcap
            picks.append(logits.argmax(dim=-1).cpu())
    return torch.cat(picks).numpy() if picks else np.zeros(0, dtype=np.int64)


def relative_error(actual: np.ndarray, reference: np.ndarray) -> float:
    """Largest per-row ``||actual - reference||_2 / ||reference||_2`` (rows are positions)."""
    actual, reference = np.asarray(actual, dtype=np.float64), np.asarray(reference, dtype=np.float64)
    if actual.shape != reference.shape:
        raise ValueError(f"shape {actual.shape} != reference shape {reference.shape}")
    if actual.size == 0:
        return 0.0
    diff = np.linalg.norm(actual - reference, axis=-1)
    return float(np.max(diff / np.maximum(np.linalg.norm(reference, axis=-1), np.finfo(np.float32).tiny)))
