"""This run beside the comparison run (``--compare-activations``): per listed feature x site, the AUROC
difference on the tasks both runs hold, with a paired bootstrap interval (``stats/paired.py``:
tasks resampled once for both runs, each run keeping its own outcome on a task)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict

import numpy as np
import pandas as pd

from artifacts.feature_list import ListedFeature
from artifacts.schema import features as fm
from artifacts.schema.activations import HOOK_POINTS
from features.readout import SiteActs
from stats.paired import paired_auroc_difference


def difference_table(features: Sequence[ListedFeature], acts: Mapping[tuple[str, str, int], SiteActs],
                     seed: int) -> pd.DataFrame:
    """One :class:`fm.DifferenceRow` per listed feature x site (NaN where either run lacks the feature).

    A feature's resamples are seeded by ``(seed, layer, feature, site)``, so identical runs give a
    difference of exactly 0 in every resample.
    """
    rows = []
    for f in features:
        for site_index, site in enumerate(HOOK_POINTS):
            ours, other = acts.get((fm.RUN_THIS, site, f.layer)), acts.get((fm.RUN_COMPARE, site, f.layer))
            rows.append(_row(f, site, ours, other, seed=(seed, f.layer, f.feature_idx, site_index)))
    return pd.DataFrame([asdict(r) for r in rows], columns=list(fm.DIFFERENCE_COLUMNS))


def _row(f: ListedFeature, site: str, ours: SiteActs | None, other: SiteActs | None, *,
         seed: tuple[int, ...]) -> fm.DifferenceRow:
    nan = float("nan")
    values = dict(n_shared_tasks=0, auroc_this=nan, auroc_compare=nan, auroc_difference=nan, difference_ci_low=nan,
                  difference_ci_high=nan)
    if ours is not None and other is not None:
        shared, i, j = np.intersect1d(ours.task_ids, other.task_ids, return_indices=True)
        correct = f.group == "correct"
        pos_a = ours.passed[i] if correct else ~ours.passed[i]
        pos_b = other.passed[j] if correct else ~other.passed[j]
        d = paired_auroc_difference(ours.column(f.feature_idx)[i], pos_a, other.column(f.feature_idx)[j], pos_b,
                                    seed=seed)
        values = dict(n_shared_tasks=int(shared.size), auroc_this=d.auroc_a, auroc_compare=d.auroc_b,
                      auroc_difference=d.difference, difference_ci_low=d.low, difference_ci_high=d.high)
    return fm.DifferenceRow(group=f.group, rank=f.rank, layer=f.layer, feature_idx=f.feature_idx, hook_point=site,
                            **values)
