"""Random stand-in SAEs: full-width JumpReLU SAEs built from a seed at run time, never stored.

A control where no trained SAE exists for the model (the demo model, SmolLM2-135M, d_model
576, has no GemmaScope SAEs): for each layer a 16384-latent JumpReLU SAE at the model's
d_model, float32, in GemmaScope's layout (``W_enc`` (d_model, d_sae), ``b_enc`` and
``threshold`` (d_sae,), ``W_dec`` (d_sae, d_model), ``b_dec`` (d_model,)):

- ``W_enc``: every column a random unit vector, ``b_enc`` and ``threshold`` 0, so a latent fires
  when the activation lies on its side of a random hyperplane through the origin;
- the listed latents' columns come from their own stream, ``default_rng([seed, layer])``,
  ``normal((d_model, k))`` over the k listed latents of the layer in ascending order, each
  column normalized in float64, then cast to float32: exactly the columns the demo's earlier
  compact stand-in files held, so the feature scores did not change when the files went;
- every other column, ``W_dec`` (unit rows) and ``b_dec`` come from ``default_rng([seed, layer, 1])``.

They are NOT trained: the metadata (``stand_in``) and the report say so, and their decoder is
random, so their reconstruction of the activations is poor by construction.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence

import numpy as np

from artifacts.errors import InputError

STAND_IN_SEED = 0  # the stand-ins' seed (not --seed, which seeds the statistics)
PARAM_KEYS = ("W_enc", "b_enc", "threshold", "W_dec", "b_dec")
DESCRIPTION = "random stand-in JumpReLU SAE (seed {seed}, layer {layer}), built at run time; NOT a GemmaScope SAE"


def stand_in_params(layer: int, *, d_model: int, d_sae: int, listed: Sequence[int],
                    seed: int = STAND_IN_SEED) -> dict[str, np.ndarray]:
    """The full parameters of layer ``layer``'s stand-in (module docstring), float32.

    Args:
        layer: the layer (seeds its streams).
        d_model: the activations' width.
        d_sae: the number of latents (16384, the width the feature lists' indices refer to).
        listed: the layer's listed latents (any order, repeats allowed).
        seed: the stand-ins' seed.

    Raises:
        InputError: ``d_model`` is not positive, or a listed latent is outside ``0..d_sae-1``.
    """
    if d_model <= 0:
        raise InputError(f"stand-in SAEs: d_model must be positive, got {d_model}")
    idx = np.unique(np.asarray(list(listed), dtype=np.int64))
    if idx.size and (idx[0] < 0 or idx[-1] >= d_sae):
        raise InputError(f"stand-in SAE of layer {layer}: listed latents outside 0..{d_sae - 1}")
    rest = np.random.default_rng([seed, layer, 1])
    W_enc = rest.standard_normal((d_model, d_sae), dtype=np.float32)
    W_enc /= np.linalg.norm(W_enc, axis=0, keepdims=True)
    W_enc[:, idx] = _listed_columns(layer, d_model, idx.size, seed)
    W_dec = rest.standard_normal((d_sae, d_model), dtype=np.float32)
    W_dec /= np.linalg.norm(W_dec, axis=1, keepdims=True)
    return {
        "W_enc": W_enc,
        "b_enc": np.zeros(d_sae, dtype=np.float32),
        "threshold": np.zeros(d_sae, dtype=np.float32),
        "W_dec": W_dec,
        "b_dec": rest.standard_normal(d_model, dtype=np.float32),
    }


def _listed_columns(layer: int, d_model: int, k: int, seed: int) -> np.ndarray:
    """Float[ndarray, "d_model k"] float64: the listed latents' unit columns, ascending latent order."""
    w = np.random.default_rng([seed, layer]).normal(size=(d_model, k))
    return w / np.linalg.norm(w, axis=0, keepdims=True)


def params_sha256(params: Mapping[str, np.ndarray]) -> str:
    """sha256 over the parameters (names, shapes, dtypes and bytes, in :data:`PARAM_KEYS` order)."""
    h = hashlib.sha256()
    for key in PARAM_KEYS:
        arr = np.ascontiguousarray(params[key])
        h.update(f"{key}:{arr.dtype.str}:{arr.shape}".encode())
        h.update(memoryview(arr).cast("B"))
    return h.hexdigest()
