"""Stand-in SAEs for the demo model: random JumpReLU columns, NOT GemmaScope.

GemmaScope's SAEs read Gemma-2-2B's residual stream (d_model 2304); the demo model
(SmolLM2-135M, 30 layers, d_model 576) has none. So that ``run --preset demo`` exercises the
features stage end to end, this module writes, per listed layer, a compact SAE file
(``features/sae.py``) holding only the listed latents (indices up to 16092 of a 16384-wide SAE):
each ``W_enc`` column a seeded random unit vector, ``b_enc`` 0, ``threshold`` 0 (the latent
fires when the activation points to its side of a random hyperplane). The files carry
``stand_in = true``; the metadata and the report say the scores are not GemmaScope's. They
test the pipeline, not the research question.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from artifacts.errors import InputError
from artifacts.feature_list import ListedFeature
from features.sae import load_sae_columns, write_compact_sae
from features.sae_source import SAE_D_SAE, SaeFile

DESCRIPTION = "random stand-in SAE for the pva-baseline demo (seed {seed}, layer {layer}); NOT a GemmaScope SAE"


def demo_sae_path(folder: Path, layer: int) -> Path:
    """File of layer ``layer``'s stand-in in ``folder``."""
    return Path(folder) / f"layer_{layer}.npz"


def build_demo_saes(
    *, folder: Path, features: Sequence[ListedFeature], d_model: int, seed: int = 0, layers: Sequence[int] | None = None
) -> list[SaeFile]:
    """Write (or keep) a stand-in SAE for each layer of ``features``; idempotent.

    A layer's file is kept when it loads, is a stand-in of width ``d_model`` and holds every
    listed latent of that layer; otherwise it is rewritten (deterministically from ``seed``).

    Args:
        folder: destination (e.g. ``DATA/models/demo_saes``).
        features: the feature list.
        d_model: the activations' width (576 for the demo model).
        seed: seeds every layer's random columns.
        layers: restrict to these layers [default: every layer of ``features``].

    Returns:
        One :class:`SaeFile` per layer, ascending.
    """
    if d_model <= 0:
        raise InputError(f"demo SAEs: d_model must be positive, got {d_model}")
    by_layer: dict[int, list[int]] = {}
    for f in features:
        if layers is None or f.layer in layers:
            by_layer.setdefault(f.layer, []).append(f.feature_idx)
    out = []
    for layer in sorted(by_layer):
        idx = sorted(set(by_layer[layer]))
        path = demo_sae_path(folder, layer)
        if not _usable(path, idx, d_model):
            rng = np.random.default_rng([seed, layer])
            w = rng.normal(size=(d_model, len(idx)))
            w /= np.linalg.norm(w, axis=0, keepdims=True)
            write_compact_sae(
                path,
                feature_idx=idx,
                W_enc=w,
                b_enc=np.zeros(len(idx)),
                threshold=np.zeros(len(idx)),
                d_sae=SAE_D_SAE,
                stand_in=True,
                description=DESCRIPTION.format(seed=seed, layer=layer),
            )
        out.append(SaeFile(layer, path, f"demo stand-in {path.name} (seed {seed}; not GemmaScope)"))
    return out


def _usable(path: Path, idx: Sequence[int], d_model: int) -> bool:
    if not path.is_file():
        return False
    try:
        sae = load_sae_columns(path, idx, expected_d_sae=SAE_D_SAE)
    except InputError:
        return False
    return sae.stand_in and sae.d_model == d_model
