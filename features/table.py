"""The tables of scores: one row per listed feature x hook site of a run (``artifacts/schema/features.py``),
and with a comparison run the paired AUROC differences; every statistic from ``stats``.

Per feature column (all columns of a group on the same tasks; ``positive`` is the feature's own
class: passed tasks for a "correct" feature, failed ones for an "incorrect" one):

- AUROC and its 95 % stratified percentile bootstrap interval (tasks resampled within each class);
- p-value: one-sided label permutations (10,000), then BH q-values over every scored row of the run;
- percentile among the layer's null latents;
- F1: the best threshold on all tasks, the cross-validated F1 (threshold fitted on the other folds);
  firing fractions and mean activations per class.

Every statistic is NaN where a class has fewer than 2 tasks, never an exception.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass

import numpy as np
import pandas as pd

from artifacts.feature_list import ListedFeature
from artifacts.schema import features as fm
from artifacts.schema.activations import HOOK_POINTS
from features.readout import Readout, SiteActs
from features.runs import Run
from features.verdict import decide
from stats.bootstrap import N_BOOTSTRAP, bootstrap_auroc_columns, paired_auroc_difference
from stats.f1 import best_f1_threshold, cross_validated_f1
from stats.folds import MAX_FOLDS
from stats.labels import Seed
from stats.null_latents import null_percentile
from stats.permutation import N_PERMUTATIONS, bh_q_values, permutation_p_values

# Seeds: the bootstrap (*seed, 0), the permutations (*seed, 1), the F1 folds (*seed, 2); each is
# shared by all columns of a labelling, so a column's numbers do not depend on the others.
BOOTSTRAP_STREAM, PERMUTATION_STREAM, FOLD_STREAM = 0, 1, 2
NAN_VALUES = dict(auroc=np.nan, auroc_ci_low=np.nan, auroc_ci_high=np.nan, fire_frac=np.nan, fire_frac_passed=np.nan,
                  fire_frac_failed=np.nan, mean_act_passed=np.nan, mean_act_failed=np.nan, f1_cv=np.nan, f1_cv_folds=0,
                  f1_threshold=np.nan, f1_all_positive=np.nan, p_value=np.nan, q_value=np.nan, null_percentile=np.nan)


def score_columns(acts: np.ndarray, positive: np.ndarray, *, seed: Seed, n_bootstrap: int = N_BOOTSTRAP,
                  n_permutations: int = N_PERMUTATIONS, max_folds: int = MAX_FOLDS) -> dict[str, np.ndarray]:
    """Every statistic of every column of ``acts`` (task, feature) for ``positive`` (task, feature).

    Returns ``{name: Float[ndarray, "feature"]}``: ``auroc``, ``auroc_ci_low``, ``auroc_ci_high``,
    ``p_value``, ``fire_frac``, ``fire_frac_positive``, ``fire_frac_negative``, ``mean_act_positive``,
    ``mean_act_negative``, ``f1_cv``, ``f1_cv_folds``, ``f1_threshold``, ``f1_all_positive``.
    """
    acts = np.asarray(acts, dtype=np.float64)
    positive = np.asarray(positive, dtype=bool)
    base = (seed,) if isinstance(seed, (int, np.integer)) else tuple(seed)
    auroc, low, high = bootstrap_auroc_columns(acts, positive, n_resamples=n_bootstrap, seed=(*base, BOOTSTRAP_STREAM))
    p = permutation_p_values(acts, positive, n_permutations=n_permutations, seed=(*base, PERMUTATION_STREAM))
    fires = acts > 0
    n_pos, n_neg = positive.sum(axis=0), (~positive).sum(axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):  # an empty class gives NaN
        out = {"auroc": auroc, "auroc_ci_low": low, "auroc_ci_high": high, "p_value": p,
               "fire_frac": fires.mean(axis=0) if acts.shape[0] else np.full(acts.shape[1], np.nan),
               "fire_frac_positive": (fires & positive).sum(axis=0) / n_pos,
               "fire_frac_negative": (fires & ~positive).sum(axis=0) / n_neg,
               "mean_act_positive": np.where(positive, acts, 0).sum(axis=0) / n_pos,
               "mean_act_negative": np.where(~positive, acts, 0).sum(axis=0) / n_neg}
    k = acts.shape[1]
    out |= {name: np.full(k, np.nan) for name in ("f1_cv", "f1_threshold", "f1_all_positive")}
    out["f1_cv_folds"] = np.zeros(k, dtype=np.int64)
    for j in range(k):
        y = positive[:, j]
        out["f1_threshold"][j] = best_f1_threshold(acts[:, j], y)[0]
        out["f1_cv"][j], out["f1_cv_folds"][j] = cross_validated_f1(acts[:, j], y, max_folds=max_folds,
                                                                    seed=(*base, FOLD_STREAM))
        n_pos_j = int(y.sum())
        out["f1_all_positive"][j] = 2 * n_pos_j / (y.size + n_pos_j) if n_pos_j else np.nan
    return out


@dataclass(frozen=True)
class _Entry:
    """One listed feature at one site of one run: its activations, or why there are none."""

    feature: ListedFeature
    site: str
    positive_class: str  # "passed" or "failed"
    acts: SiteActs | None
    reason: str | None

    @property
    def positive(self) -> np.ndarray:
        return self.acts.passed if self.positive_class == "passed" else ~self.acts.passed


def score_run(run_name: str, run: Run, features: Sequence[ListedFeature], readout: Readout,
              saes: Mapping[int, str], skipped: Mapping[int, str], seed: int, *,
              reference: str | None = None) -> pd.DataFrame:
    """Every listed feature at every hook site of ``run`` (``fm.RUN_THIS`` or ``fm.RUN_COMPARE`` in
    ``readout``), scored or with the reason it is not.

    ``saes``: the SAE id of each layer with one; ``skipped``: why each other layer has none;
    ``reference``: the run whose last-prompt FVU the verdict's fit rule compares with, or None.
    """
    entries = []
    for f in features:
        for site in HOOK_POINTS:
            acts = readout.acts.get((run_name, site, f.layer))
            reason = None if acts is not None else (
                skipped.get(f.layer) or run.vectors.not_stored.get((site, f.layer)) or "no SAE for this layer")
            entries.append(_Entry(f, site, "passed" if f.group == "correct" else "failed", acts, reason))
    fvu = _fvu_by_site(readout, run_name)
    reference_fvu = _fvu_by_site(readout, reference) if reference else {}
    rows = [_row(e, v, run, saes, fvu, reference_fvu) for e, v in zip(entries, _statistics(entries, seed))]
    return pd.DataFrame([asdict(r) for r in rows], columns=list(fm.SCORE_COLUMNS))


def _statistics(entries: Sequence[_Entry], seed: int) -> list[dict]:
    """Each entry's statistics (NaN where not scored), q-values across all scored entries of the run."""
    values = [dict(NAN_VALUES) for _ in entries]
    by_tasks: dict[bytes, list[int]] = {}
    for i, e in enumerate(entries):
        if e.acts is not None:
            by_tasks.setdefault(e.acts.task_ids.tobytes(), []).append(i)
    for members in by_tasks.values():  # one group unless layers hold different tasks
        acts = np.column_stack([entries[i].acts.column(entries[i].feature.feature_idx) for i in members])
        positive = np.column_stack([entries[i].positive for i in members])
        stats = score_columns(acts, positive, seed=seed)
        for j, i in enumerate(members):
            values[i].update(_oriented({k: v[j] for k, v in stats.items()}, entries[i].positive_class))
            # The nulls were scored for "passed"; for a "failed" feature their AUROC is 1 - that.
            null = entries[i].acts.null_auroc
            null = null if entries[i].positive_class == "passed" else 1 - null
            values[i]["null_percentile"] = null_percentile(values[i]["auroc"], null)
    q = bh_q_values(np.array([v["p_value"] for v in values]))
    for v, q_value in zip(values, q):
        v["q_value"] = float(q_value)
    return values


def _oriented(stats: dict, positive_class: str) -> dict:
    """The statistics as columns: by the feature's class in ``stats``, by passed/failed in the file."""
    pos = (stats.pop("fire_frac_positive"), stats.pop("mean_act_positive"))
    neg = (stats.pop("fire_frac_negative"), stats.pop("mean_act_negative"))
    on_passed, on_failed = (pos, neg) if positive_class == "passed" else (neg, pos)
    out = {k: float(v) for k, v in stats.items()}
    out["f1_cv_folds"] = int(stats["f1_cv_folds"])
    return out | dict(fire_frac_passed=float(on_passed[0]), mean_act_passed=float(on_passed[1]),
                      fire_frac_failed=float(on_failed[0]), mean_act_failed=float(on_failed[1]))


def _fvu_by_site(readout: Readout, run_name: str) -> dict[tuple[str, int], float]:
    """``{(site, layer): FVU}`` of a run's last-prompt fits."""
    return {(r.hook_point, r.layer): r.fvu for r in readout.fits
            if r.run == run_name and r.positions == fm.POSITIONS_LAST_PROMPT}


def _row(e: _Entry, values: dict, run: Run, saes: Mapping[int, str], fvu: Mapping,
         reference_fvu: Mapping) -> fm.ScoreRow:
    f, key = e.feature, (e.site, e.feature.layer)
    vectors = run.vectors.vectors.get(key)  # the scored tasks when scored
    task_ids = vectors.task_ids if vectors is not None else np.zeros(0, dtype=np.int64)
    n_passed = int(run.passed_of(task_ids).sum())
    sae_fvu = float(fvu.get(key, math.nan))
    verdict, why = decide(scored=e.acts is not None, reason=e.reason, n_passed=n_passed,
                          n_failed=task_ids.size - n_passed, q_value=values["q_value"],
                          ci_low=values["auroc_ci_low"], fvu=sae_fvu, reference_fvu=reference_fvu.get(key, math.nan))
    return fm.ScoreRow(
        group=f.group, rank=f.rank, layer=f.layer, feature_idx=f.feature_idx, hook_point=e.site,
        positive_class=e.positive_class, scored=e.acts is not None, not_scored_reason=e.reason,
        vector_source=run.vectors.sources.get(e.site) if vectors is not None else None,
        sae_id=saes.get(f.layer) if e.acts is not None else None, n_tasks=int(task_ids.size), n_passed=n_passed,
        n_failed=int(task_ids.size) - n_passed, **values, sae_fvu=sae_fvu, verdict=verdict, verdict_reason=why,
    )


def difference_table(features: Sequence[ListedFeature], acts: Mapping[tuple[str, str, int], SiteActs],
                     seed: int) -> pd.DataFrame:
    """Per listed feature x site, this run's AUROC minus the comparison run's on the tasks both hold, with a
    paired bootstrap interval (NaN where either run lacks the feature).

    Seeded by ``(seed, layer, feature, site)``, so identical runs differ by exactly 0 in every resample.
    """
    rows = []
    for f in features:
        for site_index, site in enumerate(HOOK_POINTS):
            ours, other = acts.get((fm.RUN_THIS, site, f.layer)), acts.get((fm.RUN_COMPARE, site, f.layer))
            nan = float("nan")
            values = dict(n_shared_tasks=0, auroc_this=nan, auroc_compare=nan, auroc_difference=nan,
                          difference_ci_low=nan, difference_ci_high=nan)
            if ours is not None and other is not None:
                shared, i, j = np.intersect1d(ours.task_ids, other.task_ids, return_indices=True)
                flip = f.group != "correct"
                d = paired_auroc_difference(ours.column(f.feature_idx)[i], ours.passed[i] ^ flip,
                                            other.column(f.feature_idx)[j], other.passed[j] ^ flip,
                                            seed=(seed, f.layer, f.feature_idx, site_index))
                values = dict(n_shared_tasks=int(shared.size), auroc_this=d.auroc_a, auroc_compare=d.auroc_b,
                              auroc_difference=d.difference, difference_ci_low=d.low, difference_ci_high=d.high)
            rows.append(fm.DifferenceRow(group=f.group, rank=f.rank, layer=f.layer, feature_idx=f.feature_idx,
                                         hook_point=site, **values))
    return pd.DataFrame([asdict(r) for r in rows], columns=list(fm.DIFFERENCE_COLUMNS))
