"""Turn the report's inputs into frozen summaries (pure; no file access, no plotting).

Defined for zero passed or zero failed tasks: rates of empty groups and AUROCs with fewer than 2
tasks in a class are ``None`` ("n/a"). Shapes: ``x`` Float[ndarray, "task d_model"], ``passed``
Bool[ndarray, "task"], the positive class (an AUROC above 0.5: passed tasks score higher). AUROC
and folds are the shared ``stats.auroc`` and ``stats.folds``, as in the features stage.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from artifacts.schema import activations as act_keys
from artifacts.schema import dataset as keys
from artifacts.schema import generations as gen_keys
from report.load import LayerActivations, ReportInputs
from stats.auroc import auroc
from stats.folds import stratified_folds

# Difficulty by the reference solution's cyclomatic complexity (cc).
GROUP_RULES = {"easy": "cc = 1", "medium": "cc 2-3", "hard": "cc >= 4"}
OVERALL = "overall"
# Per stage: its metadata's keys of tasks, wall time, tokens and tokens/s (None: not recorded).
COST_KEYS = (
    ("generate", gen_keys.N_TASKS, gen_keys.WALL_TIME_S, gen_keys.N_COMPLETION_TOKENS, gen_keys.TOKENS_PER_S),
    ("replay", act_keys.N_TASKS, act_keys.WALL_TIME_S, act_keys.N_TOKENS, act_keys.TOKENS_PER_S),
    ("evaluate", keys.N_TASKS_ATTEMPTED, keys.EVALUATION_WALL_TIME_S, None, None),
)


def complexity_group(cc: int | None) -> str | None:
    """easy: cc = 1 (no branches), medium: 2-3, hard: >= 4; None for a missing cc."""
    if pd.isna(cc):
        return None
    return "easy" if cc <= 1 else "medium" if cc <= 3 else "hard"


@dataclass(frozen=True)
class PassRate:
    """Passed tasks among ``n_tasks`` of one group: "overall", a complexity group, or one value of a category
    (finish reason, error type)."""

    label: str
    n_tasks: int
    n_passed: int

    @property
    def rate(self) -> float | None:
        return self.n_passed / self.n_tasks if self.n_tasks else None


@dataclass(frozen=True)
class Summary:
    """Count, mean, median, min, max and total of a sample (all but ``n`` None when it is empty)."""

    n: int
    mean: float | None
    median: float | None
    min: float | None
    max: float | None
    total: float | None


@dataclass(frozen=True)
class StageCost:
    """Tasks, wall time and token throughput of one stage, as its metadata recorded them."""

    stage: str
    n_tasks: int | None
    wall_time_s: float | None
    n_tokens: int | None
    tokens_per_s: float | None


@dataclass(frozen=True)
class CompletionLengths:
    """Completion length per task (``unit`` "tokens" or "characters") and whether it passed."""

    unit: str
    values: np.ndarray
    passed: np.ndarray


@dataclass(frozen=True)
class CrossValidated:
    """Out-of-fold AUROC of the mean-difference probe and the held-out scores (task,); None, 0 folds, with < 2
    tasks in a class."""

    auroc: float | None
    n_folds: int
    scores: np.ndarray | None = field(default=None, compare=False, repr=False)


@dataclass(frozen=True)
class LayerSeparation:
    """Does the last-prompt-token activation at one layer separate passed from failed tasks?

    ``norms`` and ``projections`` (see :func:`in_sample_projection`) are per task, aligned with
    ``passed``. ``projection_auroc`` is in-sample (optimistic), ``cross_validated`` is not.
    """

    layer: int
    d_model: int
    n_missing: int
    passed: np.ndarray
    norms: np.ndarray
    projections: np.ndarray | None
    norm_auroc: float | None
    projection_auroc: float | None
    cross_validated: CrossValidated

    @property
    def n_passed(self) -> int:
        return int(self.passed.sum())

    @property
    def n_failed(self) -> int:
        return int((~self.passed).sum())


@dataclass(frozen=True)
class VerdictAgreement:
    """The robust and the legacy verdict on the same tasks: ``counts[(robust, legacy)]`` tasks with that
    pair of outcomes, the ids of those passing under one verdict only."""

    rates: Mapping[str, tuple[PassRate, ...]]
    counts: Mapping[tuple[bool, bool], int]
    only_robust: tuple[int, ...]
    only_legacy: tuple[int, ...]

    @property
    def n_differ(self) -> int:
        return len(self.only_robust) + len(self.only_legacy)


@dataclass(frozen=True)
class ReportStats:
    """Everything the report shows about one evaluated dataset."""

    model: str | None
    n_tasks: int
    pass_rates: tuple[PassRate, ...]
    finish_reasons: tuple[PassRate, ...]
    error_types: tuple[PassRate, ...]
    completion_lengths: CompletionLengths | None
    prompt_tokens: Summary | None
    generation_time: Summary | None
    stage_costs: tuple[StageCost, ...]
    replay_fidelity: dict | None
    hook_point: str | None
    layers: tuple[LayerSeparation, ...]
    verdict: str | None = None  # which verdict fills test_passed (metadata), None when not recorded
    verdicts: VerdictAgreement | None = None  # both verdicts, when the dataset carries them


def compute_stats(inputs: ReportInputs) -> ReportStats:
    """Summarize the dataset and its companion files (see :class:`ReportStats`)."""
    df = inputs.dataset
    gens = _aligned_generations(df, inputs.generations)
    meta = inputs.metadata or {}
    gen_meta = inputs.generations_metadata or {}
    act_meta = inputs.activations_metadata or {}
    return ReportStats(
        model=meta.get(keys.MODEL_NAME) or gen_meta.get(gen_keys.MODEL) or act_meta.get(act_keys.MODEL),
        n_tasks=len(df),
        pass_rates=pass_rates(df),
        finish_reasons=category_counts(gens["finish_reason"], df["test_passed"]) if "finish_reason" in gens else (),
        error_types=error_type_counts(df),
        completion_lengths=completion_lengths(df, gens),
        prompt_tokens=summarize(gens["n_prompt_tokens"]) if "n_prompt_tokens" in gens else None,
        generation_time=summarize(df["generation_time"]) if "generation_time" in df else None,
        stage_costs=stage_costs(inputs.generations_metadata, inputs.activations_metadata, inputs.metadata),
        replay_fidelity=replay_fidelity(inputs.activations_metadata, inputs.metadata),
        hook_point=act_meta.get(act_keys.HOOK_POINT) or meta.get(keys.HOOK_POINT),
        layers=tuple(layer_separation(layer, df) for layer in inputs.activations),
        verdict=meta.get(keys.VERDICT),
        verdicts=verdict_agreement(df),
    )


def verdict_agreement(df: pd.DataFrame) -> VerdictAgreement | None:
    """Both verdicts side by side, or None unless the dataset has both verdict columns."""
    robust_col, legacy_col = keys.VERDICT_COLUMNS[keys.VERDICT_ROBUST], keys.VERDICT_COLUMNS[keys.VERDICT_LEGACY]
    if robust_col not in df or legacy_col not in df:
        return None
    robust, legacy = df[robust_col].astype(bool), df[legacy_col].astype(bool)
    ids = df[keys.TASK_ID]
    return VerdictAgreement(
        rates={
            keys.VERDICT_ROBUST: pass_rates(df.assign(**{keys.TEST_PASSED: robust})),
            keys.VERDICT_LEGACY: pass_rates(df.assign(**{keys.TEST_PASSED: legacy})),
        },
        counts={(r, g): int(((robust == r) & (legacy == g)).sum()) for r in (True, False) for g in (True, False)},
        only_robust=tuple(int(t) for t in ids[robust & ~legacy]),
        only_legacy=tuple(int(t) for t in ids[~robust & legacy]),
    )


def pass_rates(df: pd.DataFrame) -> tuple[PassRate, ...]:
    """Overall pass rate, then one per complexity group (empty ones too); a null cc counts in "overall" only."""
    passed = df["test_passed"].astype(bool)
    groups = df["cyclomatic_complexity"].map(complexity_group)
    in_group = [(groups == group).to_numpy(dtype=bool) for group in GROUP_RULES]
    return (PassRate(OVERALL, len(df), int(passed.sum())),
            *(PassRate(group, int(mask.sum()), int(passed[mask].sum())) for group, mask in zip(GROUP_RULES, in_group)))


def category_counts(values: pd.Series, passed: pd.Series) -> tuple[PassRate, ...]:
    """Tasks and passes per value (null as "unknown"), most frequent first, then by name."""
    names = values.astype(object).where(values.notna(), "unknown").astype(str)
    table = pd.DataFrame({"name": names.to_numpy(), "passed": passed.astype(bool).to_numpy()})
    grouped = table.groupby("name")["passed"].agg(["size", "sum"]).reset_index()
    grouped = grouped.sort_values(["size", "name"], ascending=[False, True])
    return tuple(PassRate(str(r.name), int(r.size), int(r.sum)) for r in grouped.itertuples(index=False))


def error_type_counts(df: pd.DataFrame) -> tuple[PassRate, ...]:
    """``error_type`` of the failed tasks; empty when the column is absent."""
    if "error_type" not in df:
        return ()
    failed = df.loc[~df["test_passed"].astype(bool)]
    return category_counts(failed["error_type"], failed["test_passed"])


def completion_lengths(df: pd.DataFrame, gens: pd.DataFrame) -> CompletionLengths | None:
    """Completion tokens from the generations, else characters of ``completion``, else None."""
    passed = df["test_passed"].to_numpy(dtype=bool)
    if "n_completion_tokens" in gens and gens["n_completion_tokens"].notna().any():
        known = gens["n_completion_tokens"].notna().to_numpy()
        return CompletionLengths("tokens", gens["n_completion_tokens"].to_numpy(dtype=np.float64)[known], passed[known])
    if "completion" in df:
        return CompletionLengths("characters", df["completion"].fillna("").map(len).to_numpy(dtype=np.float64), passed)
    return None


def summarize(values: pd.Series | np.ndarray) -> Summary:
    """:class:`Summary` of the non-null values."""
    s = pd.Series(values, dtype="float64").dropna()
    if s.empty:
        return Summary(0, None, None, None, None, None)
    return Summary(len(s), *(float(v) for v in (s.mean(), s.median(), s.min(), s.max(), s.sum())))


def stage_costs(
    generations_metadata: Mapping | None, activations_metadata: Mapping | None, metadata: Mapping | None
) -> tuple[StageCost, ...]:
    """One row per stage whose metadata exists, with the numbers it recorded (no estimates)."""
    metas = (generations_metadata, activations_metadata, metadata)
    return tuple(
        StageCost(stage, _number(m, tasks, int), _number(m, wall), _number(m, tokens, int), _number(m, rate))
        for m, (stage, tasks, wall, tokens, rate) in zip(metas, COST_KEYS) if m is not None
    )


def replay_fidelity(activations_metadata: Mapping | None, metadata: Mapping | None) -> dict | None:
    """The replay check (n_tasks, max_rel_error, fidelity, ...) from the activations metadata's ``verify``
    block, else the copy evaluate wrote into the dataset metadata (``replay_verify``); None if not recorded."""
    verify = act_keys.verify_block(activations_metadata)
    if verify is not None:
        return verify
    copied = (metadata or {}).get(keys.REPLAY_VERIFY)
    return dict(copied) if isinstance(copied, Mapping) and copied else None


def layer_separation(acts: LayerActivations, df: pd.DataFrame) -> LayerSeparation:
    """Norm and mean-difference projection of one layer's activations, passed vs failed."""
    passed = df.set_index("task_id")["test_passed"].loc[acts.task_ids].to_numpy(dtype=bool)
    x = acts.x.astype(np.float64)
    norms = np.linalg.norm(x, axis=1)
    projections = in_sample_projection(x, passed)
    return LayerSeparation(
        layer=acts.layer,
        d_model=int(x.shape[1]),
        n_missing=len(acts.missing_task_ids),
        passed=passed,
        norms=norms,
        projections=projections,
        norm_auroc=class_auroc(norms, passed),
        projection_auroc=None if projections is None else class_auroc(projections, passed),
        cross_validated=cross_validated_auroc(x, passed),
    )


def class_auroc(scores: np.ndarray, passed: np.ndarray) -> float | None:
    """AUROC of ``scores`` (task,) for the passed tasks, or None with < 2 tasks in a class; ValueError for NaN."""
    value = auroc(scores, passed)
    return None if math.isnan(value) else value


def in_sample_projection(x: np.ndarray, passed: np.ndarray) -> np.ndarray | None:
    """Each task's projection on the unit passed-minus-failed mean difference of the same tasks, None when a
    class is empty. Its AUROC is optimistic: in d_model dimensions the direction partly fits noise."""
    passed = np.asarray(passed, dtype=bool)
    if not passed.any() or passed.all():
        return None
    return _project(x, x[passed].mean(axis=0) - x[~passed].mean(axis=0))


def cross_validated_auroc(x: np.ndarray, passed: np.ndarray, *, seed: int = 0) -> CrossValidated:
    """Stratified k-fold AUROC of the mean-difference probe (a nearest-centroid classifier).

    Each fold's direction and midpoint come from the other folds only; the held-out decision
    values ``(x - midpoint) . unit(direction)`` share one scale and are pooled into one AUROC.
    """
    passed = np.asarray(passed, dtype=bool)
    folds = stratified_folds(passed, seed=seed)
    if not folds:
        return CrossValidated(auroc=None, n_folds=0)
    scores = np.empty(x.shape[0])
    for train, test in folds:
        mu_pos = x[train][passed[train]].mean(axis=0)
        mu_neg = x[train][~passed[train]].mean(axis=0)
        scores[test] = _project(x[test] - (mu_pos + mu_neg) / 2.0, mu_pos - mu_neg)
    return CrossValidated(auroc=class_auroc(scores, passed), n_folds=len(folds), scores=scores)


def _project(x: np.ndarray, direction: np.ndarray) -> np.ndarray:
    # Scalar projection of each row on the unit vector along direction; a zero direction gives 0.
    norm = float(np.linalg.norm(direction))
    return np.zeros(x.shape[0]) if norm == 0.0 else x @ (direction / norm)


def _aligned_generations(df: pd.DataFrame, gens: pd.DataFrame | None) -> pd.DataFrame:
    # One row per dataset task, in dataset order; tasks without a generation row get nulls.
    if gens is None:
        return pd.DataFrame(index=range(len(df)))
    gens = gens.drop_duplicates("task_id", keep="last").astype({"task_id": np.int64})
    return df[["task_id"]].merge(gens, on="task_id", how="left").drop(columns="task_id")


def _number(meta: Mapping, key: str | None, kind: type = float) -> float | int | None:
    # A recorded number (not a bool), as ``kind``; None when absent or not a number.
    value = meta.get(key) if key else None
    return kind(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None
