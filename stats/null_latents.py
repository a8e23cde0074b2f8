"""Null latents: random latents of the same SAE, scored on the same tasks and site.

A listed feature's AUROC means "present" only if it stands out from what latents chosen
without looking at the labels score. Its null percentile is where it falls among them.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from stats.bootstrap import Seed

N_NULL_LATENTS = 1000


def draw_null_latents(
    d_sae: int, n: int = N_NULL_LATENTS, *, exclude: Sequence[int] = (), seed: Seed = 0
) -> np.ndarray:
    """``n`` distinct latent indices of a ``d_sae``-wide SAE, none of ``exclude``: Int[ndarray, "latent"].

    Ascending (so an SAE's columns are read in order); all the remaining latents when fewer
    than ``n`` remain. Seeded: pass ``(seed, layer)`` for a different draw per layer.
    """
    pool = np.setdiff1d(np.arange(d_sae, dtype=np.int64), np.asarray(list(exclude), dtype=np.int64))
    if n >= pool.size:
        return pool
    return np.sort(np.random.default_rng(seed).choice(pool, size=n, replace=False))


def null_percentile(observed: float, null_aurocs: np.ndarray) -> float:
    """Percentile (0-100) of ``observed`` among ``null_aurocs`` (Float[ndarray, "latent"]).

    ``100 * (#{null < observed} + #{null == observed} / 2) / #null``: a latent that never fires
    scores exactly 0.5, and ties count one half, so a listed feature that never fires sits in
    the middle of never-firing nulls rather than at their top. The nulls must be scored for the
    same class as the feature (``1 - auroc`` of a "passed" score is its "failed" score).
    NaN nulls are left out; NaN when ``observed`` is NaN or no null is finite.
    """
    null = np.asarray(null_aurocs, dtype=np.float64).ravel()
    null = null[~np.isnan(null)]
    if np.isnan(observed) or null.size == 0:
        return float("nan")
    below = np.count_nonzero(null < observed)
    tied = np.count_nonzero(null == observed)
    return float(100 * (below + tied / 2) / null.size)
