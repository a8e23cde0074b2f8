"""The per-task, per-layer activation files: write atomically, read, and tell finished tasks apart.

``{task_id}_layer_{L}.npz`` (``--activation-format npz``, the default, or ``both``) holds
(see data/README.md):

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
hash of the token ids) lets a rerun tell whether it belongs to the current tokens.
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
from replay.generations import ReplayTask
from replay.hook_sites import HookSite

KEYS = ("arr_0", "resid_pre_last", "resid_post_last", "sequence", "token_ids", "n_prompt_tokens", "hook_name")
LAST_KEYS = {HookSite.RESID_PRE: "resid_pre_last", HookSite.RESID_POST: "resid_post_last"}
SAFETENSORS_KEY = "activation"


class ActivationFormat(str, Enum):
    """Which per-task files a replay writes (``--activation-format``)."""

    NPZ = "npz"
    SAFETENSORS = "safetensors"
    BOTH = "both"

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
        return self.resid_pre_last if site is HookSite.RESID_PRE else self.resid_post_last


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
            arr_0=arr_0,
            resid_pre_last=row(last[HookSite.RESID_PRE]),
            resid_post_last=row(last[HookSite.RESID_POST]),
            sequence=sequence16,
            token_ids=task.token_ids.astype(np.int32),
            n_prompt_tokens=np.int64(task.n_prompt_tokens),
            hook_name=np.array(site.hook_name(layer)),
        )
    if "safetensors" in fmt.suffixes:
        write_safetensors(folder, task, layer, arr_0, site)
    return n_overflow


def write_safetensors(folder: Path, task: ReplayTask, layer: int, activation: np.ndarray, site: HookSite) -> Path:
    """``{task_id}_layer_{L}.safetensors``: tensor ``activation`` float32 ``(1, d_model)``, atomically."""
    from safetensors.numpy import save_file

    dest = activation_path(folder, task.task_id, layer, "safetensors")
    with atomic_path(dest) as tmp:
        save_file({SAFETENSORS_KEY: np.ascontiguousarray(activation, dtype=np.float32)}, str(tmp), metadata=_safetensors_metadata(task, layer, site))
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
        return StoredActivations(
            arr_0=npz["arr_0"],
            resid_pre_last=npz["resid_pre_last"],
            resid_post_last=npz["resid_post_last"],
            sequence=npz["sequence"],
            token_ids=npz["token_ids"],
            n_prompt_tokens=int(npz["n_prompt_tokens"]),
            hook_name=str(npz["hook_name"]),
        )


def read_safetensors(path: Path) -> np.ndarray:
    """The ``activation`` tensor of one ``.safetensors`` file."""
    from safetensors.numpy import load_file

    return load_file(str(path))[SAFETENSORS_KEY]


# Per layer and site: the last-prompt-token vectors found in a task's stored files.
StoredLast = dict[int, dict[HookSite, np.ndarray]]


def stored_last_vectors(
    folder: Path,
    task: ReplayTask,
    layers: Sequence[int],
    *,
    d_model: int,
    site: HookSite,
    fmt: ActivationFormat = DEFAULT_ACTIVATION_FORMAT,
) -> StoredLast | None:
    """The last-prompt-token vectors of ``task``'s files, or None when a file is missing or stale.

    A task counts as stored when every file ``fmt`` names exists at every layer, loads, and
    matches the task's tokens, ``site`` and ``d_model``. Files of another generation run
    (different token ids) do not count, so a resumed replay never keeps activations of tokens
    that are no longer in the generations. The vectors returned let the caller check that
    another file made in the same forward pass (the compact feature-layer file) agrees.
    """
    found: StoredLast = {}
    for layer in layers:
        vectors: dict[HookSite, np.ndarray] = {}
        if "npz" in fmt.suffixes:
            npz = _npz_last(activation_path(folder, task.task_id, layer), task, layer, d_model, site)
            if npz is None:
                return None
            vectors.update(npz)
        if "safetensors" in fmt.suffixes:
            vec = _safetensors_last(activation_path(folder, task.task_id, layer, "safetensors"), task, layer, d_model, site)
            if vec is None or (site in vectors and not np.array_equal(vectors[site], vec)):
                return None
            vectors[site] = vec
        found[layer] = vectors
    return found


def is_stored(
    folder: Path,
    task: ReplayTask,
    layers: Sequence[int],
    d_model: int,
    *,
    site: HookSite,
    fmt: ActivationFormat = DEFAULT_ACTIVATION_FORMAT,
) -> bool:
    """Whether :func:`stored_last_vectors` finds every file of ``task`` complete and current."""
    return stored_last_vectors(folder, task, layers, d_model=d_model, site=site, fmt=fmt) is not None


def remove_stale_files(folder: Path, task: ReplayTask, layers: Sequence[int], *, d_model: int, site: HookSite, keep: ActivationFormat) -> None:
    """Delete ``task``'s files in the format ``keep`` does not write when they hold other tokens.

    Called before a task is replayed, so a folder never holds activations of tokens that are
    no longer in the generations, in any format; files of the current tokens stay.
    """
    for suffix in {"npz", "safetensors"} - set(keep.suffixes):
        for layer in layers:
            path = activation_path(folder, task.task_id, layer, suffix)
            if not path.exists():
                continue
            check = _npz_last if suffix == "npz" else _safetensors_last
            if check(path, task, layer, d_model, site) is None:
                path.unlink()


def _npz_last(path: Path, task: ReplayTask, layer: int, d_model: int, site: HookSite) -> dict[HookSite, np.ndarray] | None:
    if not path.is_file():
        return None
    try:
        with np.load(path) as npz:
            if set(npz.files) != set(KEYS):
                return None
            if str(npz["hook_name"]) != site.hook_name(layer):
                return None
            if int(npz["n_prompt_tokens"]) != task.n_prompt_tokens or not np.array_equal(npz["token_ids"], task.token_ids):
                return None
            arrays = {key: npz[key] for key in ("arr_0", *LAST_KEYS.values())}
            # Read only the header of the large array: its shape and dtype are what can differ.
            shape, dtype = _npy_header(npz.zip, "sequence.npy")
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile):
        return None
    if shape != (task.n_tokens, d_model) or dtype != np.float16:
        return None
    if any(a.shape != (1, d_model) or a.dtype != np.float32 for a in arrays.values()):
        return None
    if not np.array_equal(arrays["arr_0"], arrays[LAST_KEYS[site]]):
        return None
    return {s: arrays[key][0] for s, key in LAST_KEYS.items()}


def _safetensors_last(path: Path, task: ReplayTask, layer: int, d_model: int, site: HookSite) -> np.ndarray | None:
    if not path.is_file():
        return None
    from safetensors import SafetensorError, safe_open

    try:
        with safe_open(str(path), framework="numpy") as fh:
            if list(fh.keys()) != [SAFETENSORS_KEY] or fh.metadata() != _safetensors_metadata(task, layer, site):
                return None
            tensor = fh.get_tensor(SAFETENSORS_KEY)
    except (OSError, ValueError, SafetensorError):
        return None
    if tensor.shape != (1, d_model) or tensor.dtype != np.float32:
        return None
    return tensor[0]


def _npy_header(archive: zipfile.ZipFile, member: str) -> tuple[tuple[int, ...], np.dtype]:
    with archive.open(member) as fh:
        version = np.lib.format.read_magic(fh)
        if version == (1, 0):
            shape, _, dtype = np.lib.format.read_array_header_1_0(fh)
        else:
            shape, _, dtype = np.lib.format.read_array_header_2_0(fh)
    return tuple(shape), np.dtype(dtype)
