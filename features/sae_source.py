"""Where each layer's SAE comes from: ``--sae LAYER=PATH``, else the Hugging Face hub, or stand-ins.

The default source is GemmaScope's residual-stream SAEs of Gemma-2-2B (``--sae-repo``), width
16k, at the canonical average L0 of each layer. The file of layer ``L`` is
``layer_{L}/width_16k/average_l0_{N}/params.npz`` (about 300 MB) with ``N`` from
:data:`CANONICAL_L0`. A layer whose file cannot be had (no table entry, hub unreachable and not
in the cache) is reported as unavailable with its reason, never silently dropped.

With ``--demo-saes`` the layers without ``--sae`` get a :class:`StandInSae` instead of the hub:
a random full-width JumpReLU SAE built at run time (``features/stand_in.py``).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from artifacts.errors import InputError

DEFAULT_SAE_REPO = "google/gemma-scope-2b-pt-res"
SAE_WIDTH = "width_16k"
SAE_D_SAE = 16384  # latents of a width_16k SAE: the feature lists' indices refer to these

# Average L0 of GemmaScope's canonical 16k residual SAE per layer of Gemma-2-2B, as SAELens's
# public sae_lens/pretrained_saes.yaml lists them for release "gemma-scope-2b-pt-res-canonical"
# (sae id "layer_{L}/width_16k/canonical" -> path "layer_{L}/width_16k/average_l0_{N}").
# The PVA research's own choices (78 at layer 16, 73 at layer 19) agree.
CANONICAL_L0 = {
    10: 77, 11: 80, 12: 82, 13: 84, 14: 84, 15: 78, 16: 78, 17: 77,
    18: 74, 19: 73, 20: 71, 21: 70, 22: 72, 23: 75, 24: 73, 25: 116,
}


@dataclass(frozen=True)
class SaeFile:
    """A layer's SAE file and the id it is reported under."""

    layer: int
    path: Path
    sae_id: str  # "repo/filename" for the hub, "local:PATH" for --sae


@dataclass(frozen=True)
class StandInSae:
    """A layer's random stand-in SAE (``features/stand_in.py``), built when loaded, never stored."""

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


Downloader = Callable[..., str]  # hf_hub_download's signature: (repo_id=, filename=, local_files_only=) -> path


def hub_filename(layer: int) -> str:
    """GemmaScope's file of the canonical 16k SAE of ``layer`` (``KeyError`` outside the table)."""
    return f"layer_{layer}/{SAE_WIDTH}/average_l0_{CANONICAL_L0[layer]}/params.npz"


def parse_sae_options(values: Iterable[str], *, check_files: bool = True) -> dict[int, Path]:
    """``["16=/x/params.npz", ...]`` -> ``{16: Path("/x/params.npz")}``.

    Raises:
        InputError: a value is not ``LAYER=PATH``, names a layer twice, or (``check_files``)
            the file is missing.
    """
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


def locate_saes(
    layers: Sequence[int],
    *,
    local: Mapping[int, Path],
    repo: str = DEFAULT_SAE_REPO,
    download: Downloader = hf_download,
) -> tuple[list[SaeFile], list[SaeUnavailable]]:
    """Find the SAE file of every layer: ``local`` first, then the hub cache, then the hub.

    The cache is asked first (a published release does not change), so a rerun never waits for
    the network. After the first failed download every later layer is looked up in the cache
    only: an unreachable hub costs its retries (about 25 s; ``HF_HUB_OFFLINE=1`` skips them) once.

    Args:
        layers: the layers the feature list names.
        local: ``--sae`` files by layer; each must be one of ``layers``.
        repo: the hub repository holding GemmaScope's layout.
        download: ``hf_hub_download``-like function (tests inject one).

    Returns:
        The files found, and the layers without one, each with its reason.

    Raises:
        InputError: ``local`` names a layer that holds no listed feature.
    """
    found = local_sae_files(layers, local)
    missing: list[SaeUnavailable] = []
    hub_failed: str | None = None
    for layer in layers:
        if layer in local:
            continue
        if layer not in CANONICAL_L0:
            why = f"no canonical GemmaScope SAE listed for layer {layer}; pass --sae {layer}=PATH"
            missing.append(SaeUnavailable(layer, why))
            continue
        filename = hub_filename(layer)
        sae_id = f"{repo}/{filename}"
        path = _try(download, repo, filename, local_files_only=True)
        if path is None and hub_failed is None and not _offline():
            errors: list[str] = []
            path = _try(download, repo, filename, local_files_only=False, errors=errors)
            if path is None:
                hub_failed = errors[0]
        if path is None:
            why = hub_failed or "HF_HUB_OFFLINE is set and the file is not in the cache"
            missing.append(SaeUnavailable(
                layer, f"{sae_id} not in the Hugging Face cache and not downloadable ({why}); pass --sae {layer}=PATH"
            ))
            continue
        found.append(SaeFile(layer, Path(path), sae_id))
    return sorted(found, key=lambda f: f.layer), missing


def local_sae_files(layers: Sequence[int], local: Mapping[int, Path]) -> list[SaeFile]:
    """The ``--sae`` files as :class:`SaeFile` (id ``local:PATH``).

    Raises:
        InputError: ``local`` names a layer that holds no listed feature.
    """
    extra = sorted(set(local) - set(layers))
    if extra:
        raise InputError(f"--sae for layer(s) {extra}: the feature list names no feature there (layers {list(layers)})")
    return [SaeFile(layer, Path(local[layer]), f"local:{local[layer]}") for layer in sorted(local)]


def stand_in_saes(layers: Sequence[int], *, local: Mapping[int, Path], seed: int) -> list[SaeFile | StandInSae]:
    """``--demo-saes``: the ``--sae`` files, and a stand-in for every other layer, by layer.

    Raises:
        InputError: ``local`` names a layer that holds no listed feature.
    """
    found: list[SaeFile | StandInSae] = [*local_sae_files(layers, local)]
    found += [StandInSae(layer, seed) for layer in layers if layer not in local]
    return sorted(found, key=lambda s: s.layer)


def _offline() -> bool:
    return os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in {"1", "true", "yes", "on"}


def _try(
    download: Downloader, repo: str, filename: str, *, local_files_only: bool, errors: list[str] | None = None
) -> str | None:
    try:
        return download(repo_id=repo, filename=filename, local_files_only=local_files_only)
    except Exception as exc:  # the hub client raises many types (network, auth, missing entry)
        if errors is not None:
            lines = str(exc).strip().splitlines()
            errors.append(f"{type(exc).__name__}: {lines[0][:200]}" if lines else type(exc).__name__)
        return None
