"""The per-task, per-layer activation files: write atomically, read, and tell which tasks are done.

``{task_id}_layer_{L}.npz`` holds the arrays :mod:`artifacts.schema.activations` names
(``NPZ_*``; shapes in data/README.md): ``arr_0`` is the last prompt token at the chosen hook
point (what the downstream AUROC analysis reads), and ``sequence`` every position there in
float16. ``{task_id}_layer_{L}.safetensors`` holds one float32 tensor ``activation``, equal to
``arr_0``; its string metadata (task id, layer, hook name, prompt length and a hash of the
token ids) says which tokens it was made from.

Every file is renamed into place when complete, and the stage's completion record refuses a
folder made with other settings, so a task is done when each of its files exists and holds the
task's current tokens (:func:`is_stored`): the generations may have changed since.
"""

from __future__ import annotations

import hashlib
import zipfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from safetensors import SafetensorError, safe_open
from safetensors.numpy import load_file, save_file

from artifacts.files import atomic_path, write_npz
from artifacts.layout import activation_file_name
from artifacts.schema.activations import (
    NPZ_ARR_0,
    NPZ_HOOK_NAME,
    NPZ_KEYS,
    NPZ_LAST,
    NPZ_N_PROMPT_TOKENS,
    NPZ_SEQUENCE,
    NPZ_TOKEN_IDS,
    RESID_POST,
    RESID_PRE,
    SAFETENSORS_KEY,
    hook_name,
)
from replay.generations import ReplayTask


def suffixes(fmt: str) -> tuple[str, ...]:
    """The file suffixes an ``--activation-format`` writes, ``npz`` first."""
    return ("npz", "safetensors") if fmt == "both" else (fmt,)


@dataclass(frozen=True, eq=False)
class StoredActivations:
    """The arrays of one ``.npz`` file; the field names are the schema's ``NPZ_KEYS``."""

    arr_0: np.ndarray
    resid_pre_last: np.ndarray
    resid_post_last: np.ndarray
    sequence: np.ndarray
    token_ids: np.ndarray
    n_prompt_tokens: int
    hook_name: str


def activation_path(folder: Path, task_id: int, layer: int, suffix: str = "npz") -> Path:
    return Path(folder) / activation_file_name(task_id, layer, suffix)


def write_task_layer(folder: Path, task: ReplayTask, layer: int, *, sequence: np.ndarray,
                     last: Mapping[str, np.ndarray], site: str, fmt: str = "npz") -> int:
    """Write one task's files at one layer into ``folder`` (``task_activations``); returns how
    many values overflow float16. ``sequence`` is float32 ``(n_tokens, d_model)`` at ``site``
    (the chosen hook point), ``last`` maps each site to its float32 ``(d_model,)`` last-prompt
    vector at this layer."""
    row = lambda vec: np.ascontiguousarray(np.asarray(vec, dtype=np.float32).reshape(1, -1))  # noqa: E731
    arr_0 = row(sequence[task.n_prompt_tokens - 1])
    if not np.array_equal(arr_0, row(last[site])):
        raise ValueError(f"task {task.task_id} layer {layer}: the {site} vectors of one forward pass differ")
    n_overflow = 0
    if "npz" in suffixes(fmt):
        with np.errstate(over="ignore"):  # counted below and reported once per run
            sequence16 = sequence.astype(np.float16)
        n_overflow = int(np.count_nonzero(~np.isfinite(sequence16)))
        write_npz(activation_path(folder, task.task_id, layer), **{
            NPZ_ARR_0: arr_0,
            NPZ_LAST[RESID_PRE]: row(last[RESID_PRE]),
            NPZ_LAST[RESID_POST]: row(last[RESID_POST]),
            NPZ_SEQUENCE: sequence16,
            NPZ_TOKEN_IDS: task.token_ids.astype(np.int32),
            NPZ_N_PROMPT_TOKENS: np.int64(task.n_prompt_tokens),
            NPZ_HOOK_NAME: np.array(hook_name(site, layer)),
        })
    if "safetensors" in suffixes(fmt):
        metadata = {"task_id": str(task.task_id), "layer": str(layer), "hook_name": hook_name(site, layer),
                    "n_prompt_tokens": str(task.n_prompt_tokens), "token_ids_sha256": token_ids_sha256(task.token_ids)}
        with atomic_path(activation_path(folder, task.task_id, layer, "safetensors")) as tmp:
            save_file({SAFETENSORS_KEY: arr_0}, str(tmp), metadata=metadata)
    return n_overflow


def token_ids_sha256(token_ids: np.ndarray) -> str:
    """Hex sha256 of the ids as little-endian int32: identifies the tokens a file was made from."""
    return hashlib.sha256(np.ascontiguousarray(token_ids, dtype="<i4").tobytes()).hexdigest()


def read_activations(path: Path) -> StoredActivations:
    """Load one ``.npz`` file fully."""
    with np.load(path) as npz:
        if set(npz.files) != set(NPZ_KEYS):
            raise ValueError(f"{path}: keys {sorted(npz.files)}, expected {sorted(NPZ_KEYS)}")
        arrays = {key: npz[key] for key in NPZ_KEYS}
    scalars = {NPZ_N_PROMPT_TOKENS: int(arrays[NPZ_N_PROMPT_TOKENS]), NPZ_HOOK_NAME: str(arrays[NPZ_HOOK_NAME])}
    return StoredActivations(**{**arrays, **scalars})


def read_safetensors(path: Path) -> np.ndarray:
    """The ``activation`` tensor of one ``.safetensors`` file."""
    return load_file(str(path))[SAFETENSORS_KEY]


def is_stored(folder: Path, task: ReplayTask, layers: Sequence[int], fmt: str = "npz") -> bool:
    """Whether every file ``fmt`` names exists at every layer and holds ``task``'s current tokens.

    A file of other tokens (the generations changed since it was written) or one that does not
    load (damaged outside this tool) does not count, so the task is replayed and rewritten.
    """
    paths = [activation_path(folder, task.task_id, layer, suffix) for layer in layers for suffix in suffixes(fmt)]
    return all(_holds(path, task) for path in paths)


def _holds(path: Path, task: ReplayTask) -> bool:
    if not path.is_file():
        return False
    try:
        if path.suffix == ".npz":
            with np.load(path) as npz:  # reads only the two small arrays
                n_prompt_tokens, same_ids = int(npz[NPZ_N_PROMPT_TOKENS]), np.array_equal(npz[NPZ_TOKEN_IDS], task.token_ids)
            return n_prompt_tokens == task.n_prompt_tokens and same_ids
        with safe_open(str(path), framework="numpy") as fh:
            meta = fh.metadata() or {}
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile, SafetensorError):
        return False
    return meta.get("n_prompt_tokens") == str(task.n_prompt_tokens) and meta.get("token_ids_sha256") == token_ids_sha256(task.token_ids)
