"""A layer's whole JumpReLU SAE: found (``--sae LAYER=PATH``, else the Hugging Face hub), read, or built (a stand-in).

The hub holds GemmaScope's 16k residual-stream SAEs of Gemma-2-2B (``--sae-repo``), layer ``L`` at
``layer_{L}/width_16k/average_l0_{N}/params.npz`` (~300 MB; ``N`` from :data:`CANONICAL_L0`). A
layer without a file is reported with its reason, never silently dropped. The stage holds one
layer at a time (two 151 MB matrices for Gemma-2-2B).

Stand-ins (``--demo-saes``, for models GemmaScope does not cover) are built from a seed, never
stored, at full width: unit random ``W_enc`` columns with ``b_enc`` and ``threshold`` 0 (a latent
fires on its side of a random hyperplane); the listed latents' columns from
``default_rng([seed, layer]).normal((d_model, k))`` (ascending latents, normalized in float64: the
columns the demo's earlier stand-in files held); the rest, unit ``W_dec`` rows and ``b_dec`` from
``default_rng([seed, layer, 1])``. They are NOT trained (the metadata and the report say so).
"""

from __future__ import annotations

import hashlib
import os
import zipfile
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from artifacts.errors import InputError
from artifacts.files import sha256_file
from stats.sae_fit import JumpReluSae

DEFAULT_SAE_REPO = "google/gemma-scope-2b-pt-res"
SAE_D_SAE = 16384  # latents of a width_16k SAE: the feature lists' indices refer to these
# Average L0 of GemmaScope's canonical 16k residual SAE per layer of Gemma-2-2B, as SAELens's
# sae_lens/pretrained_saes.yaml lists them for "gemma-scope-2b-pt-res-canonical" (the PVA
# research's own choices, 78 at layer 16 and 73 at layer 19, agree).
CANONICAL_L0 = {
    10: 77, 11: 80, 12: 82, 13: 84, 14: 84, 15: 78, 16: 78, 17: 77,
    18: 74, 19: 73, 20: 71, 21: 70, 22: 72, 23: 75, 24: 73, 25: 116,
}
PARAM_KEYS = ("W_enc", "b_enc", "threshold", "W_dec", "b_dec")
FORMAT_GEMMASCOPE = "gemmascope"
FORMAT_STAND_IN = "stand-in"
STAND_IN_SEED = 0  # the stand-ins' seed (not --seed, which seeds the statistics)
DESCRIPTION = "random stand-in JumpReLU SAE (seed {seed}, layer {layer}), built at run time; NOT a GemmaScope SAE"

Downloader = Callable[..., str]  # hf_hub_download's signature: (repo_id=, filename=, local_files_only=) -> path


@dataclass(frozen=True)
class SaeFile:
    """A layer's SAE file and the id it is reported under ("repo/filename", or "local:PATH" for --sae)."""

    layer: int
    path: Path
    sae_id: str


@dataclass(frozen=True)
class StandInSae:
    """A layer's random stand-in SAE, built when loaded."""

    layer: int
    seed: int

    @property
    def sae_id(self) -> str:
        return f"stand-in:seed_{self.seed}/layer_{self.layer}"


@dataclass(frozen=True)
class SaeUnavailable:
    """A layer without an SAE: its features are not scored."""

    layer: int
    reason: str


def hub_filename(layer: int) -> str:
    """GemmaScope's file of the canonical 16k SAE of ``layer`` (``KeyError`` outside the table)."""
    return f"layer_{layer}/width_16k/average_l0_{CANONICAL_L0[layer]}/params.npz"


def parse_sae_options(values: Iterable[str], *, check_files: bool = True) -> dict[int, Path]:
    """``["16=/x/params.npz", ...]`` -> ``{16: Path("/x/params.npz")}``; InputError on a bad value, a
    layer given twice, or (``check_files``) a missing file."""
    out: dict[int, Path] = {}
    for value in values:
        layer_text, sep, path_text = value.partition("=")
        try:
            layer = int(layer_text)
        except ValueError:
            layer = -1
        if not sep or layer < 0 or not path_text:
            raise InputError(f"--sae {value!r}: expected LAYER=PATH, e.g. 16=/models/layer_16/params.npz")
        if layer in out:
            raise InputError(f"--sae: layer {layer} given twice")
        path = Path(path_text).expanduser()
        if check_files and not path.is_file():
            raise InputError(f"--sae {value}: file not found")
        out[layer] = path
    return out


def hf_download(*, repo_id: str, filename: str, local_files_only: bool) -> str:
    """``huggingface_hub.hf_hub_download`` (imported only when an SAE is fetched from the hub)."""
    from huggingface_hub import hf_hub_download

    return hf_hub_download(repo_id=repo_id, filename=filename, local_files_only=local_files_only)


def locate_saes(layers: Sequence[int], *, local: Mapping[int, Path], repo: str = DEFAULT_SAE_REPO,
                download: Downloader = hf_download) -> tuple[list[SaeFile], list[SaeUnavailable]]:
    """The SAE file of every layer (``local``, else the hub cache, else the hub), and the layers without one.

    The cache is asked first (a release does not change), so a rerun never waits for the network.
    After the first failed download later layers are looked up in the cache only: an unreachable hub
    costs its retries (about 25 s; ``HF_HUB_OFFLINE=1`` skips them) once. ``download`` is
    ``hf_hub_download``-like (tests inject one). InputError when ``local`` names a layer without features.
    """
    found = _local_files(layers, local)
    missing: list[SaeUnavailable] = []
    hub_failed: str | None = None
    offline = os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in {"1", "true", "yes", "on"}
    for layer in (layer for layer in layers if layer not in local):
        if layer not in CANONICAL_L0:
            missing.append(SaeUnavailable(layer, f"no canonical GemmaScope SAE listed for layer {layer}; "
                                                 f"pass --sae {layer}=PATH"))
            continue
        filename = hub_filename(layer)
        path, _ = _try(download, repo, filename, local_files_only=True)
        if path is None and hub_failed is None and not offline:
            path, hub_failed = _try(download, repo, filename, local_files_only=False)
        if path is None:
            why = hub_failed or "HF_HUB_OFFLINE is set and the file is not in the cache"
            missing.append(SaeUnavailable(layer, f"{repo}/{filename} not in the Hugging Face cache and not "
                                                 f"downloadable ({why}); pass --sae {layer}=PATH"))
            continue
        found.append(SaeFile(layer, Path(path), f"{repo}/{filename}"))
    return sorted(found, key=lambda f: f.layer), missing


def _try(download: Downloader, repo: str, filename: str, *, local_files_only: bool) -> tuple[str | None, str | None]:
    """The downloaded path, or None and the error's first line."""
    try:
        return download(repo_id=repo, filename=filename, local_files_only=local_files_only), None
    except Exception as exc:  # the hub client raises many types (network, auth, missing entry)
        lines = str(exc).strip().splitlines()
        return None, f"{type(exc).__name__}: {lines[0][:200]}" if lines else type(exc).__name__


def _local_files(layers: Sequence[int], local: Mapping[int, Path]) -> list[SaeFile]:
    extra = sorted(set(local) - set(layers))
    if extra:
        raise InputError(f"--sae for layer(s) {extra}: the feature list names no feature there (layers {list(layers)})")
    return [SaeFile(layer, Path(local[layer]), f"local:{local[layer]}") for layer in sorted(local)]


def stand_in_saes(layers: Sequence[int], *, local: Mapping[int, Path], seed: int) -> list[SaeFile | StandInSae]:
    """``--demo-saes``: the ``--sae`` files, and a stand-in for every other layer, by layer."""
    found: list[SaeFile | StandInSae] = [*_local_files(layers, local)]
    found += [StandInSae(layer, seed) for layer in layers if layer not in local]
    return sorted(found, key=lambda s: s.layer)


def read_params(path: str | Path, *, expected_d_sae: int | None = None) -> JumpReluSae:
    """The whole SAE of a GemmaScope ``params.npz``, as float32.

    InputError when the file is missing, not an ``.npz`` of the five arrays, inconsistent, or not
    ``expected_d_sae`` wide (the feature list's indices would name other latents).
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
        missing = [k for k in PARAM_KEYS if k not in npz.files]
        if missing:
            raise InputError(f"{path}: not a GemmaScope params.npz (no {', '.join(missing)}); "
                             f"expected keys {', '.join(PARAM_KEYS)}")
        # One array at a time, each converted in place of the one read (float32 files are not copied).
        arrays = {k: np.ascontiguousarray(npz[k], dtype=np.float32) for k in PARAM_KEYS}
    try:
        sae = JumpReluSae(**arrays)
    except ValueError as exc:
        raise InputError(f"{path}: {exc}") from exc
    if expected_d_sae is not None and sae.d_sae != expected_d_sae:
        raise InputError(f"{path}: SAE width {sae.d_sae} does not match the feature list's {expected_d_sae} latents "
                         "(GemmaScope width_16k); pass the 16k SAE of this layer")
    return sae


def stand_in_params(layer: int, *, d_model: int, d_sae: int, listed: Sequence[int],
                    seed: int = STAND_IN_SEED) -> dict[str, np.ndarray]:
    """The float32 parameters of layer ``layer``'s stand-in (module docstring); ``listed`` in any order."""
    if d_model <= 0:
        raise InputError(f"stand-in SAEs: d_model must be positive, got {d_model}")
    idx = np.unique(np.asarray(list(listed), dtype=np.int64))
    if idx.size and (idx[0] < 0 or idx[-1] >= d_sae):
        raise InputError(f"stand-in SAE of layer {layer}: listed latents outside 0..{d_sae - 1}")
    rest = np.random.default_rng([seed, layer, 1])
    W_enc = rest.standard_normal((d_model, d_sae), dtype=np.float32)
    W_enc /= np.linalg.norm(W_enc, axis=0, keepdims=True)
    listed_columns = np.random.default_rng([seed, layer]).normal(size=(d_model, idx.size))
    W_enc[:, idx] = listed_columns / np.linalg.norm(listed_columns, axis=0, keepdims=True)
    W_dec = rest.standard_normal((d_sae, d_model), dtype=np.float32)
    W_dec /= np.linalg.norm(W_dec, axis=1, keepdims=True)
    zeros = np.zeros(d_sae, dtype=np.float32)
    return {"W_enc": W_enc, "b_enc": zeros, "threshold": zeros.copy(), "W_dec": W_dec,
            "b_dec": rest.standard_normal(d_model, dtype=np.float32)}


def params_sha256(params: Mapping[str, np.ndarray]) -> str:
    """sha256 over the parameters (names, shapes, dtypes and bytes, in :data:`PARAM_KEYS` order)."""
    h = hashlib.sha256()
    for key in PARAM_KEYS:
        arr = np.ascontiguousarray(params[key])
        h.update(f"{key}:{arr.dtype.str}:{arr.shape}".encode())
        h.update(memoryview(arr).cast("B"))
    return h.hexdigest()


@dataclass(frozen=True, eq=False)
class LoadedSae:
    """One layer's SAE as the stage uses it: its source, its arrays, the sha256 of its file or parameters."""

    source: SaeFile | StandInSae
    sae: JumpReluSae
    sha256: str
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
    """One layer's whole SAE, read from its file or built as a stand-in at ``d_model``.

    InputError when the file is unusable or a ``listed`` latent lies outside the SAE.
    """
    if isinstance(source, StandInSae):
        params = stand_in_params(source.layer, d_model=d_model, d_sae=SAE_D_SAE, listed=listed, seed=source.seed)
        return LoadedSae(source, JumpReluSae(**params), params_sha256(params), FORMAT_STAND_IN,
                         DESCRIPTION.format(seed=source.seed, layer=source.layer))
    sae = read_params(source.path, expected_d_sae=SAE_D_SAE)
    idx = np.asarray(list(listed), dtype=np.int64)
    outside = sorted({int(i) for i in idx[(idx < 0) | (idx >= sae.d_sae)]})
    if outside:
        raise InputError(f"{source.path}: feature(s) {outside} outside the SAE (latents 0..{sae.d_sae - 1})")
    return LoadedSae(source, sae, sha256_file(source.path), FORMAT_GEMMASCOPE, "GemmaScope params.npz layout")
