"""How well a JumpReLU SAE describes a set of vectors ``x`` (rows of Float[ndarray, "vector d_model"])::

    acts  = relu(pre) * (pre > threshold),  pre = x @ W_enc + b_enc      # (d_sae,)
    x_hat = acts @ W_dec + b_dec                                          # (d_model,)
    FVU   = sum ||x - x_hat||^2 / sum ||x - mean(x)||^2,  L0 = mean #{acts != 0}

FVU near or above 1: the SAE explains no more than the vectors' mean, and its latents cannot be
read as the features they were on its training model. Vectors go through in blocks of rows (only
a block's rows x d_sae pre-activations are held beside the SAE), in any number of pieces
(:class:`SaeFitAccumulator`). Products run in the SAE's dtype (float32 for GemmaScope); sums
accumulate in float64 with Chan's pairwise variance update, so a large mean loses no precision.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

BLOCK_ROWS = 256  # vectors encoded at once: 256 x 16384 float32 = 16 MB of pre-activations
# Decode with the active latents' rows of W_dec only when fewer than this share fire (else dense is cheaper).
SPARSE_DECODE_BELOW = 0.5


@dataclass(frozen=True, eq=False)
class JumpReluSae:
    """A JumpReLU SAE in GemmaScope's layout: ``W_enc`` (d_model, d_sae), ``b_enc`` and ``threshold``
    (d_sae,), ``W_dec`` (d_sae, d_model), ``b_dec`` (d_model,)."""

    W_enc: np.ndarray
    b_enc: np.ndarray
    threshold: np.ndarray
    W_dec: np.ndarray
    b_dec: np.ndarray

    def __post_init__(self) -> None:
        d_model, d_sae = np.shape(self.W_enc)
        expected = {"b_enc": (d_sae,), "threshold": (d_sae,), "W_dec": (d_sae, d_model), "b_dec": (d_model,)}
        for name, shape in expected.items():
            if np.shape(getattr(self, name)) != shape:
                raise ValueError(f"JumpReLU SAE: {name} has shape {np.shape(getattr(self, name))}, expected {shape}")

    @property
    def d_model(self) -> int:
        return int(np.shape(self.W_enc)[0])

    @property
    def d_sae(self) -> int:
        return int(np.shape(self.W_enc)[1])


def encode(sae: JumpReluSae, x: np.ndarray) -> np.ndarray:
    """JumpReLU activations of a block of vectors: Float[ndarray, "vector d_sae"] in the SAE's dtype."""
    pre = np.asarray(x, dtype=sae.W_enc.dtype) @ sae.W_enc
    pre += sae.b_enc
    # relu(pre) * (pre > threshold), in place (GemmaScope thresholds are positive; this does not assume it).
    pre *= (pre > sae.threshold) & (pre > 0)
    return pre


@dataclass(frozen=True)
class SaeFit:
    """The fit over all vectors seen; ``kept_acts`` (vector, kept) holds the activations of the
    ``keep_latents`` in their order (listed and null latents need no second encoding), else None."""

    n_vectors: int
    fvu: float
    l0: float
    kept_acts: np.ndarray | None = None


class SaeFitAccumulator:
    """FVU and L0 over vectors given in pieces (:meth:`update`), read out by :meth:`result`."""

    def __init__(self, sae: JumpReluSae, *, keep_latents: Sequence[int] | None = None, block_rows: int = BLOCK_ROWS):
        self.sae = sae
        self.block_rows = max(1, int(block_rows))
        self.keep = None if keep_latents is None else np.asarray(keep_latents, dtype=np.int64)
        self._kept: list[np.ndarray] = []
        self._n = 0
        self._mean = np.zeros(sae.d_model)  # float64
        self._m2 = 0.0  # sum ||x - mean||^2 so far
        self._sse = 0.0  # sum ||x - x_hat||^2 so far
        self._active = 0  # active latents summed over vectors

    def update(self, x: np.ndarray) -> None:
        """Add the vectors ``x`` (Float[ndarray, "vector d_model"], any float dtype)."""
        x = np.asarray(x)
        if x.ndim != 2 or x.shape[1] != self.sae.d_model:
            raise ValueError(f"vectors of shape {x.shape} for an SAE of d_model {self.sae.d_model}")
        for start in range(0, x.shape[0], self.block_rows):
            self._block(x[start : start + self.block_rows])

    def _block(self, x: np.ndarray) -> None:
        xs = np.asarray(x, dtype=self.sae.W_enc.dtype)  # float32 for GemmaScope's arrays
        acts = encode(self.sae, xs)
        self._active += int(np.count_nonzero(acts))
        if self.keep is not None:
            self._kept.append(acts[:, self.keep])
        # A trained SAE is sparse (GemmaScope's L0 is ~70 of 16384): decode with the active latents' rows only.
        active = np.flatnonzero(acts.any(axis=0))
        if active.size < SPARSE_DECODE_BELOW * self.sae.d_sae:
            x_hat = acts[:, active] @ self.sae.W_dec[active]
        else:
            x_hat = acts @ self.sae.W_dec
        x_hat += self.sae.b_dec
        residual = (xs - x_hat).astype(np.float64)
        self._sse += float(np.einsum("ij,ij->", residual, residual))
        # Chan et al.'s update of the sum of squared deviations from the running mean.
        x64 = xs.astype(np.float64)
        n_b = x64.shape[0]
        mean_b = x64.mean(axis=0)
        centered = x64 - mean_b
        m2_b = float(np.einsum("ij,ij->", centered, centered))
        delta = mean_b - self._mean
        total = self._n + n_b
        self._m2 += m2_b + float(delta @ delta) * self._n * n_b / total
        self._mean += delta * n_b / total
        self._n = total

    def result(self) -> SaeFit:
        """The fit so far; FVU NaN with fewer than 2 vectors or no variance, L0 NaN with none."""
        kept = None
        if self.keep is not None:
            kept = np.concatenate(self._kept) if self._kept else np.zeros((0, self.keep.size), dtype=np.float32)
        fvu = self._sse / self._m2 if self._n >= 2 and self._m2 > 0 else float("nan")
        l0 = self._active / self._n if self._n else float("nan")
        return SaeFit(n_vectors=self._n, fvu=float(fvu), l0=float(l0), kept_acts=kept)


def sae_fit(x: np.ndarray, sae: JumpReluSae, *, keep_latents: Sequence[int] | None = None,
            block_rows: int = BLOCK_ROWS) -> SaeFit:
    """FVU and L0 of ``sae`` on the vectors ``x`` (Float[ndarray, "vector d_model"])."""
    acc = SaeFitAccumulator(sae, keep_latents=keep_latents, block_rows=block_rows)
    acc.update(x)
    return acc.result()
