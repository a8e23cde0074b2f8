"""A full-width stand-in JumpReLU SAE for the demo model, generated from a seed at run time.

The demo model (SmolLM2-135M, d_model 576) has no GemmaScope SAEs. This builds, in memory and
deterministically from ``seed``, an SAE of the same shape as a GemmaScope 16k one: ``d_sae``
latents whose encoder columns are seeded random unit vectors, decoder ``W_dec = W_enc.T``
(unit rows: the usual initialization of an SAE before training), ``b_enc``, ``b_dec`` and
``threshold`` zero (a latent fires when the vector lies on its side of a random hyperplane,
as the earlier compact stand-ins did). Nothing is stored: at d_model 576 and 16384 latents the
two matrices take 38 MB each and a few tenths of a second to draw.

It is an untrained SAE, so its reconstruction is not fitted to anything: about half the
latents fire on any vector and ``x_hat`` is roughly ``d_sae / (2 d_model)`` times ``x`` plus
noise, so its FVU comes out far above 1. That is the point: the stand-in's fit is rightly
poor, and every verdict on the demo reads "cannot tell".
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from stats.sae_fit import JumpReluSae


def standin_jumprelu_sae(d_model: int, d_sae: int, *, seed: int | Sequence[int]) -> JumpReluSae:
    """A seeded random stand-in JumpReLU SAE (module docstring), float32.

    Args:
        d_model: the vectors' width (576 for the demo model).
        d_sae: latents (16384, GemmaScope's 16k width, so listed indices name a column).
        seed: the draw; pass ``(seed, layer)`` for a different SAE per layer.

    Returns:
        ``W_enc`` Float32[ndarray, "d_model d_sae"] with unit columns, ``W_dec`` its transpose
        (contiguous), zero ``b_enc``, ``threshold`` and ``b_dec``.
    """
    if d_model <= 0 or d_sae <= 0:
        raise ValueError(f"stand-in SAE: d_model and d_sae must be positive, got {d_model}, {d_sae}")
    w_enc = np.random.default_rng(seed).standard_normal((d_model, d_sae), dtype=np.float32)
    w_enc /= np.linalg.norm(w_enc, axis=0, keepdims=True)
    return JumpReluSae(
        W_enc=w_enc,
        b_enc=np.zeros(d_sae, dtype=np.float32),
        threshold=np.zeros(d_sae, dtype=np.float32),
        W_dec=np.ascontiguousarray(w_enc.T),
        b_dec=np.zeros(d_model, dtype=np.float32),
    )
