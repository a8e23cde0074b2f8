"""JumpReLU SAE files: read only the listed latents, and encode activations with them.

Two file forms are read (``.npz``), told apart by their keys:

GemmaScope's published layout (``params.npz``), d_sae latents over d_model inputs:

| key | dtype | shape | used |
| --- | --- | --- | --- |
| ``W_enc`` | float32 | (d_model, d_sae) | only the listed columns ``W_enc[:, idx]`` |
| ``b_enc`` | float32 | (d_sae,) | ``b_enc[idx]`` |
| ``threshold`` | float32 | (d_sae,) | ``threshold[idx]`` |
| ``W_dec``, ``b_dec`` | float32 | (d_sae, d_model), (d_model,) | never read |

The compact form (written by :func:`write_compact_sae`; the demo's stand-ins use it), which
holds only some latents of a d_sae-wide SAE:

| key | dtype | shape | meaning |
| --- | --- | --- | --- |
| ``feature_idx`` | int64 | (k,) | the latent indices held, ascending, unique, < ``d_sae`` |
| ``W_enc`` | float32 | (d_model, k) | ``W_enc[:, feature_idx]`` of the full SAE |
| ``b_enc``, ``threshold`` | float32 | (k,) | ``b_enc[feature_idx]``, ``threshold[feature_idx]`` |
| ``d_sae`` | int64 | () | width of the full SAE |
| ``stand_in`` | bool | () | true for stand-ins that are not a trained SAE (the demo's) |
| ``description`` | str | () | free text: what the file is |

``W_enc`` of a GemmaScope file (151 MB for Gemma-2-2B's 16k width) is streamed row block by
row block, keeping only the listed columns, so loading a layer needs a few tens of MB.
"""

from __future__ import annotations

import zipfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from artifacts.errors import InputError
from artifacts.files import write_npz

GEMMASCOPE_KEYS = ("W_enc", "b_enc", "threshold")
COMPACT_KEYS = ("feature_idx", "W_enc", "b_enc", "threshold", "d_sae")
FORMAT_GEMMASCOPE = "gemmascope"
FORMAT_COMPACT = "compact"
STREAM_BLOCK_BYTES = 32 << 20  # bytes of W_enc rows read at once
ENCODE_BLOCK_TASKS = 256  # tasks encoded at once


@dataclass(frozen=True, eq=False)
class SaeColumns:
    """The listed latents of one SAE: enough to encode, nothing to decode.

    ``W_enc`` Float[ndarray, "d_model k"], ``b_enc`` and ``threshold`` Float[ndarray, "k"];
    column ``j`` is latent ``feature_idx[j]`` of a ``d_sae``-wide SAE.
    """

    feature_idx: np.ndarray
    W_enc: np.ndarray
    b_enc: np.ndarray
    threshold: np.ndarray
    d_sae: int
    file_format: str  # FORMAT_GEMMASCOPE or FORMAT_COMPACT
    stand_in: bool
    description: str

    @property
    def d_model(self) -> int:
        return int(self.W_enc.shape[0])

    def column(self, feature_idx: int) -> int:
        """Position of latent ``feature_idx`` among the loaded columns."""
        return int(np.searchsorted(self.feature_idx, feature_idx))


def load_sae_columns(path: str | Path, feature_idx: Sequence[int], *, expected_d_sae: int | None = None) -> SaeColumns:
    """Read the columns of the listed latents from a GemmaScope ``params.npz`` or a compact file.

    Args:
        path: the ``.npz`` file.
        feature_idx: latent indices to load (any order, repeats allowed).
        expected_d_sae: the SAE width the indices refer to (16384 for GemmaScope 16k); another
            width is an error, since the same index would name another latent.

    Returns:
        The columns, sorted by latent index.

    Raises:
        InputError: the file is missing or not one of the two forms, has another width, or
            lacks a listed latent.
    """
    path = Path(path)
    wanted = np.unique(np.asarray(list(feature_idx), dtype=np.int64))
    if not path.is_file():
        raise InputError(f"{path}: SAE file not found")
    try:
        npz = np.load(path, allow_pickle=False)
    except (OSError, ValueError, zipfile.BadZipFile) as exc:
        raise InputError(f"{path}: not a readable .npz file ({exc})") from exc
    if not isinstance(npz, np.lib.npyio.NpzFile):
        raise InputError(f"{path}: a single .npy array, not an .npz archive of SAE parameters")
    with npz:
        keys = set(npz.files)
        if "feature_idx" in keys:
            return _load_compact(path, npz, keys, wanted, expected_d_sae)
        missing = [k for k in GEMMASCOPE_KEYS if k not in keys]
        if missing:
            raise InputError(
                f"{path}: not a GemmaScope params.npz nor a compact SAE file (no {', '.join(missing)}); "
                "expected keys W_enc, b_enc, threshold"
            )
        b_enc = np.asarray(npz["b_enc"])
        threshold = np.asarray(npz["threshold"])
    d_sae = int(b_enc.shape[0]) if b_enc.ndim == 1 else -1
    _check_width(path, d_sae, expected_d_sae, wanted)
    if threshold.shape != (d_sae,):
        raise InputError(f"{path}: threshold has shape {threshold.shape}, b_enc {b_enc.shape}; expected both (d_sae,)")
    W_enc = _read_columns(path, "W_enc", wanted, n_cols_expected=d_sae)
    return SaeColumns(
        feature_idx=wanted,
        W_enc=W_enc,
        b_enc=b_enc[wanted].astype(np.float32),
        threshold=threshold[wanted].astype(np.float32),
        d_sae=d_sae,
        file_format=FORMAT_GEMMASCOPE,
        stand_in=False,
        description="GemmaScope params.npz layout",
    )


def _load_compact(path: Path, npz, keys: set[str], wanted: np.ndarray, expected_d_sae: int | None) -> SaeColumns:
    missing = [k for k in COMPACT_KEYS if k not in keys]
    if missing:
        raise InputError(f"{path}: compact SAE file lacks {', '.join(missing)}")
    held = np.asarray(npz["feature_idx"], dtype=np.int64)
    W_enc, b_enc, threshold = (np.asarray(npz[k], dtype=np.float32) for k in ("W_enc", "b_enc", "threshold"))
    d_sae = int(npz["d_sae"])
    if held.ndim != 1 or np.any(np.diff(held) <= 0):
        raise InputError(f"{path}: feature_idx must be ascending and unique")
    if W_enc.ndim != 2 or W_enc.shape[1] != held.size or b_enc.shape != held.shape or threshold.shape != held.shape:
        raise InputError(
            f"{path}: W_enc {W_enc.shape}, b_enc {b_enc.shape}, threshold {threshold.shape} do not match "
            f"{held.size} feature_idx; expected (d_model, k), (k,), (k,)"
        )
    _check_width(path, d_sae, expected_d_sae, wanted)
    absent = np.setdiff1d(wanted, held)
    if absent.size:
        raise InputError(
            f"{path}: compact SAE holds no column for feature(s) {absent.tolist()}; rebuild it for this list"
        )
    pos = np.searchsorted(held, wanted)
    return SaeColumns(
        feature_idx=wanted,
        W_enc=np.ascontiguousarray(W_enc[:, pos]),
        b_enc=b_enc[pos],
        threshold=threshold[pos],
        d_sae=d_sae,
        file_format=FORMAT_COMPACT,
        stand_in=bool(npz["stand_in"]) if "stand_in" in keys else False,
        description=str(npz["description"]) if "description" in keys else "",
    )


def _check_width(path: Path, d_sae: int, expected: int | None, wanted: np.ndarray) -> None:
    if d_sae <= 0:
        raise InputError(f"{path}: b_enc is not a (d_sae,) vector")
    if expected is not None and d_sae != expected:
        raise InputError(
            f"{path}: SAE width {d_sae} does not match the feature list's {expected} latents "
            "(GemmaScope width_16k); pass the 16k SAE of this layer"
        )
    outside = wanted[(wanted < 0) | (wanted >= d_sae)]
    if outside.size:
        raise InputError(f"{path}: feature(s) {outside.tolist()} outside the SAE (latents 0..{d_sae - 1})")


def _read_columns(path: Path, key: str, columns: np.ndarray, *, n_cols_expected: int) -> np.ndarray:
    """``array[:, columns]`` of a 2-D array stored in an ``.npz``, read row block by row block."""
    with zipfile.ZipFile(path) as zf, zf.open(f"{key}.npy") as fp:
        version = np.lib.format.read_magic(fp)
        if version == (1, 0):
            shape, fortran, dtype = np.lib.format.read_array_header_1_0(fp)
        elif version == (2, 0):
            shape, fortran, dtype = np.lib.format.read_array_header_2_0(fp)
        else:  # a newer header: fall back to reading the whole array
            shape, fortran, dtype = None, True, None
        if shape is None or fortran or len(shape) != 2 or dtype.hasobject:
            with np.load(path, allow_pickle=False) as npz:
                full = np.asarray(npz[key])
            if full.ndim != 2 or full.shape[1] != n_cols_expected:
                raise InputError(f"{path}: {key} has shape {full.shape}, expected (d_model, {n_cols_expected})")
            return np.ascontiguousarray(full[:, columns], dtype=np.float32)
        n_rows, n_cols = shape
        if n_cols != n_cols_expected:
            raise InputError(f"{path}: {key} has shape {shape}, expected (d_model, {n_cols_expected})")
        out = np.empty((n_rows, columns.size), dtype=np.float32)
        row_bytes = n_cols * dtype.itemsize
        step = max(1, STREAM_BLOCK_BYTES // max(row_bytes, 1))
        for start in range(0, n_rows, step):
            m = min(step, n_rows - start)
            block = np.frombuffer(_read_exactly(fp, m * row_bytes, path), dtype=dtype).reshape(m, n_cols)
            out[start : start + m] = block[:, columns]
        return out


def _read_exactly(fp, n: int, path: Path) -> bytes:
    chunks, remaining = [], n
    while remaining:
        chunk = fp.read(remaining)
        if not chunk:
            raise InputError(f"{path}: truncated array data; download the file again")
        chunks.append(chunk)
        remaining -= len(chunk)
    return b"".join(chunks)


def jumprelu_encode(x: np.ndarray, sae: SaeColumns, *, block_tasks: int = ENCODE_BLOCK_TASKS) -> np.ndarray:
    """JumpReLU latent activations of the loaded columns for each row of ``x``.

    ``pre = x @ W_enc + b_enc``; ``acts = relu(pre) * (pre > threshold)``. This equals
    ``pre * (pre > threshold)`` only when every threshold is non-negative: with a negative
    threshold, a ``pre`` between it and 0 gives 0 here, not a negative value.
    (SAELens would be the usual loader and encoder for GemmaScope SAEs, but its releases
    require transformer-lens < 4, which this project cannot use; the encoding is short
    enough to write here.) Computed in float64 from the float32 inputs, ``block_tasks``
    rows at a time, so memory stays at a block times the loaded columns.

    Args:
        x: Float[ndarray, "task d_model"].
        sae: the loaded columns.
        block_tasks: rows encoded at once.

    Returns:
        Float[ndarray, "task k"] (float64), column ``j`` for latent ``sae.feature_idx[j]``.

    Raises:
        InputError: ``x``'s width is not the SAE's d_model.
    """
    x = np.asarray(x)
    if x.ndim != 2 or x.shape[1] != sae.d_model:
        raise InputError(f"activations of width {x.shape[-1]} do not match the SAE's d_model {sae.d_model}")
    W = sae.W_enc.astype(np.float64)
    b = sae.b_enc.astype(np.float64)
    thr = sae.threshold.astype(np.float64)
    out = np.empty((x.shape[0], W.shape[1]), dtype=np.float64)
    for start in range(0, x.shape[0], block_tasks):
        pre = x[start : start + block_tasks].astype(np.float64) @ W + b
        out[start : start + block_tasks] = np.where(pre > thr, np.maximum(pre, 0.0), 0.0)
    return out


def write_compact_sae(
    path: str | Path,
    *,
    feature_idx: Sequence[int],
    W_enc: np.ndarray,
    b_enc: np.ndarray,
    threshold: np.ndarray,
    d_sae: int,
    stand_in: bool,
    description: str,
) -> Path:
    """Write the compact form (module docstring), columns sorted by latent index, atomically."""
    idx = np.asarray(list(feature_idx), dtype=np.int64)
    order = np.argsort(idx)
    if np.any(np.diff(idx[order]) == 0):
        raise ValueError("feature_idx must be unique")
    write_npz(
        path,
        feature_idx=idx[order],
        W_enc=np.ascontiguousarray(np.asarray(W_enc, dtype=np.float32)[:, order]),
        b_enc=np.asarray(b_enc, dtype=np.float32)[order],
        threshold=np.asarray(threshold, dtype=np.float32)[order],
        d_sae=np.int64(d_sae),
        stand_in=np.bool_(stand_in),
        description=np.str_(description),
    )
    return Path(path)
