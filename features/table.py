"""The score table of one run: one row per listed feature and hook site (``artifacts/schema/features.py``)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict

import numpy as np
import pandas as pd

from artifacts.feature_list import ListedFeature
from artifacts.schema import features as fm
from artifacts.schema.activations import HOOK_POINTS
from features.runs import Run
from features.sae import LoadedSae, jumprelu_encode
from features.score import FeatureStats, score_feature
from features.vectors import LayerVectors

NOT_SCORED = dict(auroc=np.nan, auroc_ci_low=np.nan, auroc_ci_high=np.nan, fire_frac=np.nan, fire_frac_passed=np.nan,
                  fire_frac_failed=np.nan, mean_act_passed=np.nan, mean_act_failed=np.nan, f1_cv=np.nan, f1_cv_folds=0,
                  f1_threshold=np.nan, f1_all_positive=np.nan)


def score_run(
    run: Run,
    features: Sequence[ListedFeature],
    saes: Mapping[int, LoadedSae],
    skipped: Mapping[int, str],
    seed: int,
) -> pd.DataFrame:
    """Every listed feature at every hook site of ``run``, scored or with the reason it is not.

    Each feature's statistics are seeded by ``(seed, layer, feature_idx, site index)``, so they do
    not depend on which other features are scored.
    """
    rows = []
    encoded: dict[tuple[str, int], np.ndarray] = {}
    for f in features:
        positive_class = "passed" if f.group == "correct" else "failed"
        for hook_index, hook in enumerate(HOOK_POINTS):
            key = (hook, f.layer)
            vectors = run.vectors.vectors.get(key)
            reason = skipped.get(f.layer) or (run.vectors.not_stored.get(key) if vectors is None else None)
            if reason is None and f.layer not in saes:
                reason = "no SAE for this layer"
            if reason is not None:
                rows.append(_row(f, hook, positive_class, run, vectors, reason=reason))
                continue
            sae = saes[f.layer]
            if key not in encoded:
                encoded[key] = jumprelu_encode(vectors.x, sae.columns)
            acts = encoded[key][:, sae.columns.column(f.feature_idx)]
            passed = np.array([run.passed[int(t)] for t in vectors.task_ids], dtype=bool)
            positive = passed if positive_class == "passed" else ~passed
            stats = score_feature(acts, positive, rng=np.random.default_rng([seed, f.layer, f.feature_idx, hook_index]))
            rows.append(_row(f, hook, positive_class, run, vectors, sae_id=sae.sae_id, stats=stats, passed=passed))
    return pd.DataFrame([asdict(r) for r in rows], columns=list(fm.SCORE_COLUMNS))


def _row(
    f: ListedFeature,
    hook: str,
    positive_class: str,
    run: Run,
    vectors: LayerVectors | None,
    *,
    reason: str | None = None,
    sae_id: str | None = None,
    stats: FeatureStats | None = None,
    passed: np.ndarray | None = None,
) -> fm.ScoreRow:
    if stats is None:
        n = 0 if vectors is None else int(vectors.task_ids.size)
        n_passed = 0 if vectors is None else int(sum(run.passed[int(t)] for t in vectors.task_ids))
        values = NOT_SCORED
    else:
        n, n_passed = stats.n_tasks, int(passed.sum())
        values = _values(stats, positive_class)
    return fm.ScoreRow(
        group=f.group, rank=f.rank, layer=f.layer, feature_idx=f.feature_idx, hook_point=hook,
        positive_class=positive_class, scored=stats is not None, not_scored_reason=reason,
        vector_source=run.vectors.sources.get(hook) if vectors is not None else None, sae_id=sae_id,
        n_tasks=n, n_passed=n_passed, n_failed=n - n_passed, **values,
    )


def _values(stats: FeatureStats, positive_class: str) -> dict:
    """The statistics as columns: oriented by the feature's class in ``stats``, by passed/failed in the file."""
    positive = (stats.fire_frac_positive, stats.mean_act_positive)
    negative = (stats.fire_frac_negative, stats.mean_act_negative)
    on_passed, on_failed = (positive, negative) if positive_class == "passed" else (negative, positive)
    return dict(auroc=stats.auroc, auroc_ci_low=stats.auroc_ci_low, auroc_ci_high=stats.auroc_ci_high,
                fire_frac=stats.fire_frac, fire_frac_passed=on_passed[0], fire_frac_failed=on_failed[0],
                mean_act_passed=on_passed[1], mean_act_failed=on_failed[1], f1_cv=stats.f1_cv,
                f1_cv_folds=stats.f1_cv_folds, f1_threshold=stats.f1_threshold, f1_all_positive=stats.f1_all_positive)
