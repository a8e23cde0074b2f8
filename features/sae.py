"""A layer's whole JumpReLU SAE: read from GemmaScope's ``params.npz``, or built (a stand-in).

GemmaScope's published layout, d_sae latents over d_model inputs (all five arrays are used:
the encoder for the features' activations, the decoder for the SAE's fit, ``stats/sae_fit.py``):

| key | dtype | shape |
| --- | --- | --- |
| ``W_enc`` | float32 | (d_model, d_sae) |
| ``b_enc``, ``threshold`` | float32 | (d_sae,) |
| ``W_dec`` | float32 | (d_sae, d_model) |
| ``b_dec`` | float32 | (d_model,) |

One layer at a time: Gemma-2-2B's 16k SAE holds two 151 MB matrices, so the stage loads a
layer, uses it for every run and site, and lets it go before the next (peak memory near one
layer's matrices). A stand-in SAE (``features/stand_in.py``) has the same arrays, built in memory.
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
from stats.sae_fit import JumpReluSae

GEMMASCOPE_KEYS = ("W_enc", "b_enc", "threshold", "W_dec", "b_dec")
FORMAT_GEMMASCOPE = "gemmascope"
FORMAT_STAND_IN = "stand-in"


def read_params(path: str | Path, *, expected_d_sae: int | None = None) -> JumpReluSae:
    """The whole SAE of a GemmaScope ``params.npz`` (float32, whatever dtype was stored).

    Args:
        path: the ``.npz`` file.
        expected_d_sae: the SAE width the feature list's indices refer to (16384 for GemmaScope
            16k); another width is an error, since the same index would name another latent.

    Raises:
        InputError: the file is missing, not an ``.npz`` of GemmaScope's five arrays, of
            inconsistent shapes, or of another width.
    """
    path = Path(path)
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
            raise InputError(f"{path}: not a GemmaScope params.npz (no {', '.join(missing)}); "
                             f"expected keys {', '.join(GEMMASCOPE_KEYS)}")
        # One array at a time, each converted in place of the one read (float32 files are not copied).
        arrays = {k: np.ascontiguousarray(npz[k], dtype=np.float32) for k in GEMMASCOPE_KEYS}
    try:
        sae = JumpReluSae(**arrays)
    except ValueError as exc:
        raise InputError(f"{path}: {exc}") from exc
    if expected_d_sae is not None and sae.d_sae != expected_d_sae:
        raise InputError(
            f"{path}: SAE width {sae.d_sae} does not match the feature list's {expected_d_sae} latents "
            "(GemmaScope width_16k); pass the 16k SAE of this layer"
        )
    return sae


@dataclass(frozen=True, eq=False)
class LoadedSae:
    """One layer's SAE as the stage uses it: where it came from, its arrays, its sha256."""

    source: SaeFile | StandInSae
    sae: JumpReluSae
    sha256: str  # of the file, or of the stand-in's parameters
    file_format: str  # FORMAT_GEMMASCOPE or FORMAT_STAND_IN
    description: str

    @property
    def layer(self) -> int:
        return self.source.layer

    @property
    def sae_id(self) -> str:
        return self.source.sae_id

    @property
    def stand_in(self) -> bool:
        return self.file_format == FORMAT_STAND_IN


def load_layer_sae(source: SaeFile | StandInSae, listed: Sequence[int], *, d_model: int) -> LoadedSae:
    """One layer's whole SAE: read from its file, or built (a stand-in).

    Args:
        source: the file, or the stand-in to build.
        listed: the layer's listed latents (each must lie inside the SAE).
        d_model: the activations' width (a stand-in is built at it; a file is checked by the caller).

    Raises:
        InputError: the file is unusable (:func:`read_params`), or a listed latent is outside the SAE.
    """
    if isinstance(source, SaeFile):
        sae = read_params(source.path, expected_d_sae=SAE_D_SAE)
        _check_listed(sae, listed, str(source.path))
        return LoadedSae(source, sae, sha256_file(source.path), FORMAT_GEMMASCOPE, "GemmaScope params.npz layout")
    params = stand_in_params(source.layer, d_model=d_model, d_sae=SAE_D_SAE, listed=listed, seed=source.seed)
    return LoadedSae(source, JumpReluSae(**params), params_sha256(params), FORMAT_STAND_IN,
                     DESCRIPTION.format(seed=source.seed, layer=source.layer))


def _check_listed(sae: JumpReluSae, listed: Sequence[int], where: str) -> None:
    idx = np.asarray(list(listed), dtype=np.int64)
    outside = sorted({int(i) for i in idx[(idx < 0) | (idx >= sae.d_sae)]})
    if outside:
        raise InputError(f"{where}: feature(s) {outside} outside the SAE (latents 0..{sae.d_sae - 1})")
