"""JumpReLU SAEs: read only the listed latents, and encode activations with them.

GemmaScope's published layout (``params.npz``), d_sae latents over d_model inputs:

| key | dtype | shape | used |
| --- | --- | --- | --- |
| ``W_enc`` | float32 | (d_model, d_sae) | only the listed columns ``W_enc[:, idx]`` |
| ``b_enc`` | float32 | (d_sae,) | ``b_enc[idx]`` |
| ``threshold`` | float32 | (d_sae,) | ``threshold[idx]`` |
| ``W_dec``, ``b_dec`` | float32 | (d_sae, d_model), (d_model,) | never read |

``W_enc`` of a GemmaScope file (151 MB for Gemma-2-2B's 16k width) is streamed row block by
row block, keeping only the listed columns, so loading a layer needs a few tens of MB. A
stand-in SAE (``features/stand_in.py``) has the same parameters, built in memory instead.
"""

from __future__ import annotations

import zipfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from artifacts.errors import InputError
from artifacts.files import sha256_file
from features.sae_source import SAE_D_SAE, SaeFile, StandInSae
from features.stand_in import DESCRIPTION, params_sha256, stand_in_params

GEMMASCOPE_KEYS = ("W_enc", "b_enc", "threshold")
FORMAT_GEMMASCOPE = "gemmascope"
FORMAT_STAND_IN = "stand-in"
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
    file_format: str  # FORMAT_GEMMASCOPE or FORMAT_STAND_IN
    stand_in: bool
    description: str

    @property
    def d_model(self) -> int:
        return int(self.W_enc.shape[0])

    def column(self, feature_idx: int) -> int:
        """Position of latent ``feature_idx`` among the loaded columns."""
        return int(np.searchsorted(self.feature_idx, feature_idx))


def load_sae_columns(path: str | Path, feature_idx: Sequence[int], *, expected_d_sae: int | None = None) -> SaeColumns:
    """Read the columns of the listed latents from a GemmaScope ``params.npz``.

    Args:
        path: the ``.npz`` file.
        feature_idx: latent indices to load (any order, repeats allowed).
        expected_d_sae: the SAE width the indices refer to (16384 for GemmaScope 16k); another
            width is an error, since the same index would name another latent.

    Returns:
        The columns, sorted by latent index.

    Raises:
        InputError: the file is missing or not in GemmaScope's layout, has another width, or
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
        missing = [k for k in GEMMASCOPE_KEYS if k not in npz.files]
        if missing:
            raise InputError(
                f"{path}: not a GemmaScope params.npz (no {', '.join(missing)}); expected keys W_enc, b_enc, threshold"
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


@dataclass(frozen=True, eq=False)
class LoadedSae:
    """One layer's SAE as the stage uses it: where it came from, its listed columns, its sha256."""

    source: SaeFile | StandInSae
    columns: SaeColumns
    sha256: str  # of the file, or of the stand-in's parameters

    @property
    def layer(self) -> int:
        return self.source.layer

    @property
    def sae_id(self) -> str:
        return self.source.sae_id


def load_layer_sae(source: SaeFile | StandInSae, feature_idx: Sequence[int], *, d_model: int) -> LoadedSae:
    """The listed latents' columns of one layer's SAE: read from its file, or built (a stand-in).

    Args:
        source: the file, or the stand-in to build.
        feature_idx: the layer's listed latents.
        d_model: the activations' width (a stand-in is built at it; a file is checked later).

    Raises:
        InputError: the file is unusable (:func:`load_sae_columns`), or a latent is outside the SAE.
    """
    if isinstance(source, SaeFile):
        columns = load_sae_columns(source.path, feature_idx, expected_d_sae=SAE_D_SAE)
        return LoadedSae(source, columns, sha256_file(source.path))
    params = stand_in_params(source.layer, d_model=d_model, d_sae=SAE_D_SAE, listed=feature_idx, seed=source.seed)
    wanted = np.unique(np.asarray(list(feature_idx), dtype=np.int64))
    columns = SaeColumns(
        feature_idx=wanted,
        W_enc=np.ascontiguousarray(params["W_enc"][:, wanted]),
        b_enc=params["b_enc"][wanted],
        threshold=params["threshold"][wanted],
        d_sae=SAE_D_SAE,
        file_format=FORMAT_STAND_IN,
        stand_in=True,
        description=DESCRIPTION.format(seed=source.seed, layer=source.layer),
    )
    return LoadedSae(source, columns, params_sha256(params))
