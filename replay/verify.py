"""``--verify N``: check stored activations against Hugging Face, and the replay's fidelity.

For N sampled tasks, one Hugging Face forward (eager attention, same dtype and device) of
the same token ids gives

(a) the reference residual stream, ``output_hidden_states``: ``resid_pre`` L is
    ``hidden_states[L]`` and ``resid_post`` L is ``hidden_states[L + 1]``, except after the
    last block, where Hugging Face applies the final norm: there the input of that norm is
    read instead. Both hook points are checked. The error of a vector is
    ``||stored - ref||_2 / ||ref||_2``; ``max_rel_error`` is the largest over the chosen hook
    point's float32 last-prompt vectors of the per-task files (``arr_0``, and the
    safetensors ``activation``: what downstream reads); ``resid_pre_max_rel_error`` and
    ``resid_post_max_rel_error`` over every stored last-prompt vector at that site (the
    per-task files' ``resid_*_last`` and the compact feature-layer file);
    ``feature_vectors_max_rel_error`` over the compact file alone (both sites, all its
    layers); ``sequence_max_rel_error`` over every position of the float16 ``sequence``
    (bounded below by float16 rounding, about 2**-11 = 4.9e-4, not by the replay);
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

from replay.feature_vectors import FeatureVectors, read_feature_vectors
from replay.generations import ReplayTask
from replay.hook_sites import HookSite
from replay.model import ModelSpec
from replay.store import DEFAULT_ACTIVATION_FORMAT, ActivationFormat, activation_path, read_activations, read_safetensors

LOGIT_CHUNK = 256  # completion positions per lm_head call: 256 x 256k float32 logits = 256 MiB


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


def load_reference_model(spec: ModelSpec) -> Any:
    """The plain Hugging Face causal LM, eager attention, in ``spec``'s dtype and device."""
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(
        spec.name, revision=spec.revision, dtype=spec.dtype, attn_implementation="eager"
    )
    return model.to(spec.device).eval()


def verify_activations(
    *,
    spec: ModelSpec,
    tasks: Sequence[ReplayTask],
    folder: Path,
    layers: Sequence[int],
    site: HookSite,
    n: int,
    fmt: ActivationFormat = DEFAULT_ACTIVATION_FORMAT,
    feature_vectors_path: Path | None = None,
    seed: int = 0,
    show_progress: bool = True,
) -> VerifyResult:
    """Compare the stored files of ``n`` sampled tasks with Hugging Face (see module docstring).

    Args:
        spec: the model the activations were made with.
        tasks: every replayed task (the sample is drawn from these).
        folder: the ``task_activations`` folder.
        layers: the stored layers.
        site: the stored hook point (``arr_0``'s).
        n: how many tasks to check (at most ``len(tasks)``).
        fmt: which per-task files to read.
        feature_vectors_path: the compact feature-layer vectors file, checked when it exists.
        seed: seed of the sample.
        show_progress: show a tqdm bar.
    """
    sample = sorted(random.Random(seed).sample(list(tasks), min(n, len(tasks))), key=lambda t: t.task_id)
    compact = read_feature_vectors(feature_vectors_path) if feature_vectors_path and Path(feature_vectors_path).exists() else None
    worst = _Worst()
    model = load_reference_model(spec)
    n_positions = n_matches = 0
    try:
        for task in tqdm(sample, desc="verify", unit="task", disable=not show_progress):
            residuals, final_hidden = reference_residuals(model, task.token_ids)
            _check_task_files(worst, residuals, task, folder=folder, layers=layers, site=site, fmt=fmt)
            if compact is not None:
                _check_compact_row(worst, residuals, task, compact)
            predicted = completion_argmax(model, final_hidden, n_prompt_tokens=task.n_prompt_tokens)
            n_positions += predicted.size
            n_matches += int(np.count_nonzero(predicted == task.completion_token_ids))
    finally:
        del model
    return VerifyResult(
        n_tasks=len(sample),
        task_ids=tuple(t.task_id for t in sample),
        seed=seed,
        max_rel_error=worst.get("chosen", 0.0),
        resid_pre_max_rel_error=worst.get(HookSite.RESID_PRE, 0.0),
        resid_post_max_rel_error=worst.get(HookSite.RESID_POST, 0.0),
        feature_vectors_max_rel_error=worst.get("compact"),
        sequence_max_rel_error=worst.get("sequence"),
        fidelity=n_matches / n_positions if n_positions else None,
        n_completion_positions=n_positions,
        n_argmax_matches=n_matches,
    )


class _Worst:
    """The largest error seen per key (absent until one is seen)."""

    def __init__(self) -> None:
        self.values: dict[Any, float] = {}

    def bump(self, key: Any, value: float) -> None:
        self.values[key] = max(self.values.get(key, value), value)

    def get(self, key: Any, default: float | None = None) -> float | None:
        return self.values.get(key, default)


def _check_task_files(worst: _Worst, residuals: np.ndarray, task: ReplayTask, *, folder: Path, layers: Sequence[int],
                      site: HookSite, fmt: ActivationFormat) -> None:
    """The per-task files of one task: ``arr_0`` / ``activation`` ("chosen"), both sites' last vectors, ``sequence``."""
    last = task.n_prompt_tokens - 1
    for layer in layers:
        ref = residuals[site.hidden_state_index(layer)]
        if "npz" in fmt.suffixes:
            stored = read_activations(activation_path(folder, task.task_id, layer))
            worst.bump("chosen", relative_error(stored.arr_0[0], ref[last]))
            for at in HookSite:
                worst.bump(at, relative_error(stored.last(at)[0], residuals[at.hidden_state_index(layer)][last]))
            worst.bump("sequence", relative_error(stored.sequence, ref))
        if "safetensors" in fmt.suffixes:
            activation = read_safetensors(activation_path(folder, task.task_id, layer, "safetensors"))
            worst.bump("chosen", relative_error(activation[0], ref[last]))
            worst.bump(site, relative_error(activation[0], ref[last]))


def _check_compact_row(worst: _Worst, residuals: np.ndarray, task: ReplayTask, compact: FeatureVectors) -> None:
    """The compact file's row of one task (when it has one): both sites, every layer."""
    rows = np.flatnonzero(compact.task_id == task.task_id)
    if rows.size == 0:
        return
    last = task.n_prompt_tokens - 1
    for at, vectors in ((HookSite.RESID_PRE, compact.resid_pre), (HookSite.RESID_POST, compact.resid_post)):
        for i, layer in enumerate(compact.layers.tolist()):
            value = relative_error(vectors[rows[0], i], residuals[at.hidden_state_index(layer)][last])
            worst.bump(at, value)
            worst.bump("compact", value)


def reference_residuals(model: Any, token_ids: np.ndarray) -> tuple[np.ndarray, torch.Tensor]:
    """Hugging Face's residual stream at every block boundary, and the final normed hidden state.

    Returns:
        float32 ``(n_layers + 1, n_tokens, d_model)``: entry ``L`` is the input of block ``L``
        (``hidden_states[L]``), entry ``n_layers`` the output of the last block before the
        final norm; and the normed hidden state ``(n_tokens, d_model)`` the unembedding reads.
    """
    decoder = model.get_decoder()
    n_layers = model.config.get_text_config().num_hidden_layers
    captured: dict[str, torch.Tensor] = {}

    def keep_norm_input(_module: Any, args: tuple) -> None:
        captured["pre_norm"] = args[0]

    ids = torch.as_tensor(token_ids, dtype=torch.long, device=model.device)[None]
    handle = decoder.norm.register_forward_pre_hook(keep_norm_input)
    try:
        with torch.inference_mode():
            out = decoder(input_ids=ids, output_hidden_states=True)
    finally:
        handle.remove()
    stack = [*out.hidden_states[:n_layers], captured["pre_norm"]]
    residuals = torch.stack([h[0] for h in stack]).to("cpu", torch.float32).numpy()
    return residuals, out.last_hidden_state[0]


def reference_activations(
    model: Any, token_ids: np.ndarray, *, layers: Sequence[int], site: HookSite
) -> tuple[dict[int, np.ndarray], torch.Tensor]:
    """Hugging Face residual stream at ``layers`` and ``site`` (float32 ``(n_tokens, d_model)``
    each), and the final normed hidden state ``(n_tokens, d_model)`` the unembedding reads."""
    residuals, final_hidden = reference_residuals(model, token_ids)
    return {layer: residuals[site.hidden_state_index(layer)] for layer in layers}, final_hidden


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
    actual = np.asarray(actual, dtype=np.float64)
    reference = np.asarray(reference, dtype=np.float64)
    if actual.shape != reference.shape:
        raise ValueError(f"shape {actual.shape} != reference shape {reference.shape}")
    if actual.size == 0:
        return 0.0
    diff = np.linalg.norm(actual - reference, axis=-1)
    scale = np.maximum(np.linalg.norm(reference, axis=-1), np.finfo(np.float32).tiny)
    return float(np.max(diff / scale))
