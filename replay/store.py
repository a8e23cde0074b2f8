"""The per-task, per-layer ``.npz`` files: write atomically, read, and tell finished tasks apart.

One file ``{task_id}_layer_{L}.npz`` holds (see data/README.md):

- ``arr_0``: float32 ``(1, d_model)``, the activation at the last prompt token (the key the
  downstream AUROC analysis reads);
- ``sequence``: float16 ``(n_tokens, d_model)``, every prompt and completion position;
- ``token_ids``: int32 ``(n_tokens,)``, the replayed ids;
- ``n_prompt_tokens``: int64 scalar.
"""

from __future__ import annotations

import zipfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from artifacts.files import write_npz
from replay.generations import ReplayTask

KEYS = ("arr_0", "sequence", "token_ids", "n_prompt_tokens")


@dataclass(frozen=True, eq=False)
class StoredActivations:
    """The arrays of one file (shapes as in the module docstring)."""

    arr_0: np.ndarray
    sequence: np.ndarray
    token_ids: np.ndarray
    n_prompt_tokens: int


def activation_path(folder: Path, task_id: int, layer: int) -> Path:
    return Path(folder) / f"{task_id}_layer_{layer}.npz"


def write_task_layer(folder: Path, task: ReplayTask, layer: int, acts: np.ndarray) -> int:
    """Write one task's activations at one layer; returns how many values overflow float16.

    Args:
        folder: the ``task_activations`` folder.
        task: the replayed task.
        layer: the layer ``acts`` came from.
        acts: float32 ``(n_tokens, d_model)``.
    """
    if acts.shape[0] != task.n_tokens:
        raise ValueError(f"task {task.task_id}: {acts.shape[0]} activation rows for {task.n_tokens} tokens")
    with np.errstate(over="ignore"):  # counted below and reported once per run
        sequence = acts.astype(np.float16)
    write_npz(
        activation_path(folder, task.task_id, layer),
        arr_0=np.ascontiguousarray(acts[task.n_prompt_tokens - 1 : task.n_prompt_tokens], dtype=np.float32),
        sequence=sequence,
        token_ids=task.token_ids.astype(np.int32),
        n_prompt_tokens=np.int64(task.n_prompt_tokens),
    )
    return int(np.count_nonzero(~np.isfinite(sequence)))


def read_activations(path: Path) -> StoredActivations:
    """Load one file fully."""
    with np.load(path) as npz:
        return StoredActivations(
            arr_0=npz["arr_0"], sequence=npz["sequence"], token_ids=npz["token_ids"], n_prompt_tokens=int(npz["n_prompt_tokens"])
        )


def is_stored(folder: Path, task: ReplayTask, layers: Sequence[int], d_model: int) -> bool:
    """Whether every layer's file of ``task`` exists, loads, and matches its tokens and shapes.

    Files of another generation run (different token ids) do not count, so a resumed
    replay never keeps activations of tokens that are no longer in the generations.
    """
    return all(_file_matches(activation_path(folder, task.task_id, layer), task, d_model) for layer in layers)


def _file_matches(path: Path, task: ReplayTask, d_model: int) -> bool:
    if not path.is_file():
        return False
    try:
        with np.load(path) as npz:
            if set(npz.files) != set(KEYS):
                return False
            token_ids = npz["token_ids"]
            arr_0 = npz["arr_0"]
            if int(npz["n_prompt_tokens"]) != task.n_prompt_tokens or not np.array_equal(token_ids, task.token_ids):
                return False
            # Read only the header of the large array: its shape and dtype are what can differ.
            shape, dtype = _npy_header(npz.zip, "sequence.npy")
        return (
            arr_0.shape == (1, d_model)
            and arr_0.dtype == np.float32
            and shape == (task.n_tokens, d_model)
            and dtype == np.float16
        )
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile):
        return False


def _npy_header(archive: zipfile.ZipFile, member: str) -> tuple[tuple[int, ...], np.dtype]:
    with archive.open(member) as fh:
        version = np.lib.format.read_magic(fh)
        if version == (1, 0):
            shape, _, dtype = np.lib.format.read_array_header_1_0(fh)
        else:
            shape, _, dtype = np.lib.format.read_array_header_2_0(fh)
    return tuple(shape), np.dtype(dtype)
