"""Benjamini-Hochberg q-values (false discovery rate) across the features x sites of a run."""

from __future__ import annotations

import numpy as np
from scipy.stats import false_discovery_control


def bh_q_values(p_values: np.ndarray) -> np.ndarray:
    """Benjamini-Hochberg adjusted p-values: Float[ndarray, "test"], same shape as the input.

    NaN p-values (features not scored: a class too small, an SAE missing) stay NaN and are not
    counted among the tests, so they neither loosen nor tighten the others' correction.
    A feature is a discovery at false discovery rate ``alpha`` when its q-value is <= ``alpha``.
    """
    p = np.asarray(p_values, dtype=np.float64)
    q = np.full(p.shape, np.nan)
    tested = ~np.isnan(p)
    if tested.any():
        q[tested] = false_discovery_control(p[tested], method="bh")
    return q
