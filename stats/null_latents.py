"""Null latents: random latents of the same SAE, scored on the same tasks and site, against which a
listed feature's AUROC must stand out."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from stats.labels import Seed

N_NULL_LATENTS = 1000


def draw_null_latents(d_sae: int, n: int = N_NULL_LATENTS, *, exclude: Sequence[int] = (),
                      seed: Seed = 0) -> np.ndarray:
    """``n`` distinct latents of a ``d_sae``-wide SAE, none of ``exclude``, ascending (all remaining when fewer)."""
    pool = np.setdiff1d(np.arange(d_sae, dtype=np.int64), np.asarray(list(exclude), dtype=np.int64))
    if n >= pool.size:
        return pool
    return np.sort(np.random.default_rng(seed).choice(pool, size=n, replace=False))


def null_percentile(observed: float, null_aurocs: np.ndarray) -> float:
    """Percentile (0-100) of ``observed`` among the finite ``null_aurocs``, ties counting one half.

    A latent that never fires scores exactly 0.5, so a listed feature that never fires sits in the
    middle of the never-firing nulls, not at their top. The nulls must be scored for the feature's
    class. NaN when ``observed`` is NaN or no null is finite.
    """
    null = np.asarray(null_aurocs, dtype=np.float64).ravel()
    null = null[~np.isnan(null)]
    if np.isnan(observed) or null.size == 0:
        return float("nan")
    below = np.count_nonzero(null < observed)
    tied = np.count_nonzero(null == observed)
    return float(100 * (below + tied / 2) / null.size)
