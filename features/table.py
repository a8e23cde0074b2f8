"""The score table of one run: one row per listed feature and hook site (``artifacts/schema/features.py``)."""

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
from features.score import score_columns
from features.verdict import decide
from stats.multiple_testing import bh_q_values
from stats.null_latents import null_percentile

NAN_VALUES = dict(auroc=np.nan, auroc_ci_low=np.nan, auroc_ci_high=np.nan, fire_frac=np.nan, fire_frac_passed=np.nan,
                  fire_frac_failed=np.nan, mean_act_passed=np.nan, mean_act_failed=np.nan, f1_cv=np.nan, f1_cv_folds=0,
                  f1_threshold=np.nan, f1_all_positive=np.nan, p_value=np.nan, q_value=np.nan, null_percentile=np.nan)


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
    """Every listed feature at every hook site of ``run``, scored or with the reason it is not.

    Args:
        run_name: ``fm.RUN_THIS`` or ``fm.RUN_COMPARE`` (the readout's key of this run).
        run: its labels and vectors.
        features: the feature list.
        readout: what the layers' SAEs gave.
        saes: the SAE id of each layer that has one.
        skipped: why each layer without an SAE has none.
        seed: the statistics' seed.
        reference: the run whose last-prompt FVU the verdict's fit rule compares with
            (``fm.RUN_COMPARE``), or None for the absolute bound (``features/verdict.py``).
    """
    entries = [_entry(run_name, run, f, site, readout, skipped) for f in features for site in HOOK_POINTS]
    values = _statistics(entries, seed)
    fvu = _fvu_by_site(readout, run_name)
    reference_fvu = _fvu_by_site(readout, reference) if reference else {}
    rows = [_row(e, v, run, saes, (fvu, reference_fvu)) for e, v in zip(entries, values)]
    return pd.DataFrame([asdict(r) for r in rows], columns=list(fm.SCORE_COLUMNS))


def _entry(run_name: str, run: Run, f: ListedFeature, site: str, readout: Readout,
           skipped: Mapping[int, str]) -> _Entry:
    positive_class = "passed" if f.group == "correct" else "failed"
    acts = readout.acts.get((run_name, site, f.layer))
    reason = None
    if acts is None:
        reason = skipped.get(f.layer) or run.vectors.not_stored.get((site, f.layer)) or "no SAE for this layer"
    return _Entry(f, site, positive_class, acts, reason)


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


def _row(e: _Entry, values: dict, run: Run, saes: Mapping[int, str], fvus: tuple[Mapping, Mapping]) -> fm.ScoreRow:
    f = e.feature
    fvu, reference_fvu = fvus
    task_ids = e.acts.task_ids if e.acts is not None else _stored_task_ids(run, e.site, f.layer)
    n_passed = int(run.passed_of(task_ids).sum())
    key = (e.site, f.layer)
    sae_fvu = float(fvu.get(key, math.nan))
    verdict, why = decide(scored=e.acts is not None, reason=e.reason, n_passed=n_passed,
                          n_failed=task_ids.size - n_passed, q_value=values["q_value"],
                          ci_low=values["auroc_ci_low"], fvu=sae_fvu, reference_fvu=reference_fvu.get(key, math.nan))
    vectors = run.vectors.vectors.get(key)
    return fm.ScoreRow(
        group=f.group, rank=f.rank, layer=f.layer, feature_idx=f.feature_idx, hook_point=e.site,
        positive_class=e.positive_class, scored=e.acts is not None, not_scored_reason=e.reason,
        vector_source=run.vectors.sources.get(e.site) if vectors is not None else None,
        sae_id=saes.get(f.layer) if e.acts is not None else None, n_tasks=int(task_ids.size), n_passed=n_passed,
        n_failed=int(task_ids.size) - n_passed, **values, sae_fvu=sae_fvu, verdict=verdict, verdict_reason=why,
    )


def _stored_task_ids(run: Run, site: str, layer: int) -> np.ndarray:
    vectors = run.vectors.vectors.get((site, layer))
    return np.zeros(0, dtype=np.int64) if vectors is None else vectors.task_ids
