"""The per-task, per-layer activation files: write atomically, read, and tell which tasks are done.

``{task_id}_layer_{L}.npz`` (``--activation-format npz``, the default, or ``both``) holds
(keys in :mod:`artifacts.schema.activations`, shapes in data/README.md):

- ``arr_0``: float32 ``(1, d_model)``, the activation at the last prompt token at the chosen
  hook point (the key the downstream AUROC analysis reads);
- ``resid_pre_last``, ``resid_post_last``: float32 ``(1, d_model)``, the last-prompt-token
  vector at each residual site of block ``L`` (one of them equals ``arr_0``), from the same
  forward pass;
- ``sequence``: float16 ``(n_tokens, d_model)``, every prompt and completion position at the
  chosen hook point;
- ``token_ids``: int32 ``(n_tokens,)``, the replayed ids;
- ``n_prompt_tokens``: int64 scalar;
- ``hook_name``: 0-d unicode array, the TransformerLens name of ``arr_0``'s hook (loads
  without ``allow_pickle``).

``{task_id}_layer_{L}.safetensors`` (``--activation-format safetensors`` or ``both``) holds one
float32 tensor ``activation`` ``(1, d_model)``, equal to ``arr_0``, written with the
``safetensors`` library; its string metadata (task id, layer, hook name, prompt length and a
hash of the token ids) says which tokens it was made from.

Every file is renamed into place when complete, and the stage's completion record refuses a
folder made with other settings, so a task is done when each of its files exists and holds the
task's current tokens (:func:`is_stored`): the generations may have changed since.
"""

from __future__ import annotations

import hashlib
import zipfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from enum import Enum
from pathlib import Path

import numpy as np

from artifacts.files import atomic_path, write_npz
from artifacts.layout import activation_file_name
from artifacts.schema.activations import (
    ACTIVATION_FORMATS,
    NPZ_ARR_0,
    NPZ_HOOK_NAME,
    NPZ_KEYS,
    NPZ_N_PROMPT_TOKENS,
    NPZ_SEQUENCE,
    NPZ_TOKEN_IDS,
    SAFETENSORS_KEY,
)
from replay.generations import ReplayTask
from replay.hook_sites import HookSite

PRE, POST = HookSite.RESID_PRE, HookSite.RESID_POST


class ActivationFormat(str, Enum):
    """Which per-task files a replay writes (``--activation-format``)."""

    NPZ, SAFETENSORS, BOTH = ACTIVATION_FORMATS

    @property
    def suffixes(self) -> tuple[str, ...]:
        """File suffixes written, ``npz`` first."""
        return ("npz", "safetensors") if self is ActivationFormat.BOTH else (self.value,)


DEFAULT_ACTIVATION_FORMAT = ActivationFormat.NPZ


@dataclass(frozen=True, eq=False)
class StoredActivations:
    """The arrays of one ``.npz`` file (shapes as in the module docstring)."""

    arr_0: np.ndarray
    resid_pre_last: np.ndarray
    resid_post_last: np.ndarray
    sequence: np.ndarray
    token_ids: np.ndarray
    n_prompt_tokens: int
    hook_name: str

    def last(self, site: HookSite) -> np.ndarray:
        """``resid_pre_last`` or ``resid_post_last``."""
        return self.resid_pre_last if site is PRE else self.resid_post_last


def activation_path(folder: Path, task_id: int, layer: int, suffix: str = "npz") -> Path:
    return Path(folder) / activation_file_name(task_id, layer, suffix)


def write_task_layer(
    folder: Path,
    task: ReplayTask,
    layer: int,
    *,
    sequence: np.ndarray,
    last: Mapping[HookSite, np.ndarray],
    site: HookSite,
    fmt: ActivationFormat = DEFAULT_ACTIVATION_FORMAT,
) -> int:
    """Write one task's files at one layer; returns how many values overflow float16.

    Args:
        folder: the ``task_activations`` folder.
        task: the replayed task.
        layer: the layer the arrays came from.
        sequence: float32 ``(n_tokens, d_model)`` at ``site``.
        last: float32 ``(d_model,)`` per site: the last-prompt-token vectors of this layer.
        site: the chosen hook point (``arr_0``'s).
        fmt: which files to write.
    """
    if sequence.shape[0] != task.n_tokens:
        raise ValueError(f"task {task.task_id}: {sequence.shape[0]} activation rows for {task.n_tokens} tokens")
    row = lambda vec: np.ascontiguousarray(np.asarray(vec, dtype=np.float32).reshape(1, -1))  # noqa: E731
    arr_0 = row(sequence[task.n_prompt_tokens - 1])
    if not np.array_equal(arr_0, row(last[site])):
        raise ValueError(f"task {task.task_id} layer {layer}: the {site.value} vectors of one forward pass differ")
    n_overflow = 0
    if "npz" in fmt.suffixes:
        with np.errstate(over="ignore"):  # counted below and reported once per run
            sequence16 = sequence.astype(np.float16)
        n_overflow = int(np.count_nonzero(~np.isfinite(sequence16)))
        write_npz(
            activation_path(folder, task.task_id, layer),
            **{
                NPZ_ARR_0: arr_0,
                PRE.npz_last_key: row(last[PRE]),
                POST.npz_last_key: row(last[POST]),
                NPZ_SEQUENCE: sequence16,
                NPZ_TOKEN_IDS: task.token_ids.astype(np.int32),
                NPZ_N_PROMPT_TOKENS: np.int64(task.n_prompt_tokens),
                NPZ_HOOK_NAME: np.array(site.hook_name(layer)),
            },
        )
    if "safetensors" in fmt.suffixes:
        write_safetensors(folder, task, layer, arr_0, site)
    return n_overflow


def write_safetensors(folder: Path, task: ReplayTask, layer: int, activation: np.ndarray, site: HookSite) -> Path:
    """``{task_id}_layer_{L}.safetensors``: tensor ``activation`` float32 ``(1, d_model)``, atomically."""
    from safetensors.numpy import save_file

    dest = activation_path(folder, task.task_id, layer, "safetensors")
    with atomic_path(dest) as tmp:
        save_file({SAFETENSORS_KEY: np.ascontiguousarray(activation, dtype=np.float32)}, str(tmp),
                  metadata=_safetensors_metadata(task, layer, site))
    return dest


def _safetensors_metadata(task: ReplayTask, layer: int, site: HookSite) -> dict[str, str]:
    return {
        "task_id": str(task.task_id),
        "layer": str(layer),
        "hook_name": site.hook_name(layer),
        "n_prompt_tokens": str(task.n_prompt_tokens),
        "token_ids_sha256": token_ids_sha256(task.token_ids),
    }


def token_ids_sha256(token_ids: np.ndarray) -> str:
    """Hex sha256 of the ids as little-endian int32: identifies the tokens a file was made from."""
    return hashlib.sha256(np.ascontiguousarray(token_ids, dtype="<i4").tobytes()).hexdigest()


def read_activations(path: Path) -> StoredActivations:
    """Load one ``.npz`` file fully."""
    with np.load(path) as npz:
        if set(npz.files) != set(NPZ_KEYS):
            raise ValueError(f"{path}: keys {sorted(npz.files)}, expected {sorted(NPZ_KEYS)}")
        return StoredActivations(
            arr_0=npz[NPZ_ARR_0],
            resid_pre_last=npz[PRE.npz_last_key],
            resid_post_last=npz[POST.npz_last_key],
            sequence=npz[NPZ_SEQUENCE],
            token_ids=npz[NPZ_TOKEN_IDS],
            n_prompt_tokens=int(npz[NPZ_N_PROMPT_TOKENS]),
            hook_name=str(npz[NPZ_HOOK_NAME]),
        )


def read_safetensors(path: Path) -> np.ndarray:
    """The ``activation`` tensor of one ``.safetensors`` file."""
    from safetensors.numpy import load_file

    return load_file(str(path))[SAFETENSORS_KEY]


def is_stored(folder: Path, task: ReplayTask, layers: Sequence[int], fmt: ActivationFormat = DEFAULT_ACTIVATION_FORMAT) -> bool:
    """Whether every file ``fmt`` names exists at every layer and holds ``task``'s current tokens.

    A file of other tokens (the generations changed since it was written) or one that does not
    load (damaged outside this tool) does not count, so the task is replayed and rewritten.
    """
    for layer in layers:
        if "npz" in fmt.suffixes and not _npz_holds(activation_path(folder, task.task_id, layer), task):
            return False
        if "safetensors" in fmt.suffixes and not _safetensors_holds(
            activation_path(folder, task.task_id, layer, "safetensors"), task
        ):
            return False
    return True


def _npz_holds(path: Path, task: ReplayTask) -> bool:
    if not path.is_file():
        return False
    try:
        with np.load(path) as npz:  # reads only the two small arrays
            return int(npz[NPZ_N_PROMPT_TOKENS]) == task.n_prompt_tokens and np.array_equal(npz[NPZ_TOKEN_IDS], task.token_ids)
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile):
        return False


def _safetensors_holds(path: Path, task: ReplayTask) -> bool:
    if not path.is_file():
        return False
    from safetensors import SafetensorError, safe_open

    try:
        with safe_open(str(path), framework="numpy") as fh:
            meta = fh.metadata() or {}
    except (OSError, ValueError, SafetensorError):
        return False
    return meta.get("n_prompt_tokens") == str(task.n_prompt_tokens) and meta.get("token_ids_sha256") == token_ids_sha256(task.token_ids)
