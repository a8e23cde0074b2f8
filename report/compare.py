"""Set a base-model dataset (same columns, e.g. the Phase 3.5 parquet) beside ours, task by task.

Pass rates are compared on the tasks both hold, grouped by our ``cyclomatic_complexity``, so a
difference in the task sets cannot masquerade as a difference in skill. Like is compared with
like: one comparison per verdict both carry (``robust_test_passed``, ``legacy_test_passed``). A
dataset without ``legacy_test_passed`` (the earlier phases' parquets) carries one verdict of
unknown rules, its ``test_passed``, labelled "verdict unknown".
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
from sklearn.metrics import cohen_kappa_score

from artifacts.files import read_optional_json
from artifacts.layout import DATASET_METADATA_FILE
from artifacts.schema import dataset as keys
from artifacts.tables import read_dataset
from report.stats import PassRate, complexity_group, pass_rates

UNKNOWN_VERDICT = "verdict unknown"


@dataclass(frozen=True)
class Comparison:
    """Our dataset against a base-model dataset on their shared tasks, under one verdict each side.

    ``per_task`` has one row per shared task: ``task_id``, ``cyclomatic_complexity``,
    ``complexity_group``, ``passed`` (ours), ``base_passed``, ``agree``.
    """

    base_path: Path
    label: str
    base_label: str
    verdict: str
    base_verdict: str
    n_only_ours: int
    n_only_base: int
    rates: tuple[PassRate, ...]
    base_rates: tuple[PassRate, ...]
    per_task: pd.DataFrame

    @property
    def n_shared(self) -> int:
        return len(self.per_task)

    @property
    def verdicts(self) -> str:
        """``robust`` when both sides share it, else ``robust vs verdict unknown``."""
        return self.verdict if self.verdict == self.base_verdict else f"{self.verdict} vs {self.base_verdict}"

    def count(self, *, ours: bool, base: bool) -> int:
        """Shared tasks where ours passed == ``ours`` and the base passed == ``base``."""
        t = self.per_task
        return int(((t["passed"] == ours) & (t["base_passed"] == base)).sum())

    @property
    def agreement(self) -> float | None:
        """Share of shared tasks with the same outcome (None without shared tasks)."""
        return float(self.per_task["agree"].mean()) if self.n_shared else None

    @property
    def cohen_kappa(self) -> float | None:
        """Agreement beyond chance; None when chance agreement is already perfect (one outcome throughout)."""
        t = self.per_task
        if len(set(t["passed"]) | set(t["base_passed"])) < 2:
            return None
        return float(cohen_kappa_score(t["passed"], t["base_passed"]))


def verdict_outcomes(df: pd.DataFrame, metadata: Mapping | None = None) -> dict[str, pd.Series]:
    """Verdict -> pass/fail per row: ``legacy`` and ``robust`` (from ``test_passed`` unless it holds the legacy
    verdict) with ``legacy_test_passed``, else ``{"verdict unknown": test_passed}``."""
    legacy_col = keys.VERDICT_COLUMNS[keys.VERDICT_LEGACY]
    robust_col = keys.VERDICT_COLUMNS[keys.VERDICT_ROBUST]
    if legacy_col not in df:
        return {UNKNOWN_VERDICT: df[keys.TEST_PASSED]}
    out = {}
    if robust_col in df:
        out[keys.VERDICT_ROBUST] = df[robust_col]
    elif (metadata or {}).get(keys.VERDICT) != keys.VERDICT_LEGACY:
        out[keys.VERDICT_ROBUST] = df[keys.TEST_PASSED]
    out[keys.VERDICT_LEGACY] = df[legacy_col]
    return out


def compare_datasets(
    ours: pd.DataFrame, base_path: Path, *, label: str = "instruct", ours_metadata: Mapping | None = None
) -> tuple[Comparison, ...]:
    """Compare ``ours`` with the dataset at ``base_path`` (``task_id``, ``test_passed``), verdict by verdict.

    One comparison per verdict both carry (robust first), else one of the two ``test_passed``
    columns, each side labelled with its verdict (``ours_metadata`` says which fills ours). The
    base is named after the ``model_name`` of a ``metadata.json`` beside it, else "base (<stem>)".
    """
    base_path = Path(base_path)
    base = read_dataset(base_path, required=(keys.TASK_ID, keys.TEST_PASSED))
    base_meta = read_optional_json(base_path.parent / DATASET_METADATA_FILE)
    mine, theirs = verdict_outcomes(ours, ours_metadata), verdict_outcomes(base, base_meta)
    shared = [v for v in (keys.VERDICT_ROBUST, keys.VERDICT_LEGACY) if v in mine and v in theirs]
    pairs = [(v, mine[v], v, theirs[v]) for v in shared] or [
        (_chosen(mine, ours_metadata), ours[keys.TEST_PASSED], _chosen(theirs, base_meta), base[keys.TEST_PASSED])
    ]
    base_name = (base_meta or {}).get(keys.MODEL_NAME)
    base_label = (Path(str(base_name)).name if base_name else "") or f"base ({base_path.stem})"
    if base_label == label:
        base_label = f"{base_label} (base)"
    return tuple(
        Comparison(base_path, label, base_label, verdict, base_verdict, *_shared_tasks(ours, passed, base, base_passed))
        for verdict, passed, base_verdict, base_passed in pairs
    )


def _chosen(outcomes: Mapping[str, pd.Series], metadata: Mapping | None) -> str:
    """The verdict in ``test_passed``: the metadata's, else robust for a dataset with both, else unknown."""
    if UNKNOWN_VERDICT in outcomes:
        return UNKNOWN_VERDICT
    recorded = (metadata or {}).get(keys.VERDICT)
    return recorded if recorded in outcomes else keys.VERDICT_ROBUST


def _shared_tasks(ours: pd.DataFrame, passed: pd.Series, base: pd.DataFrame, base_passed: pd.Series) -> tuple:
    """The last five fields of :class:`Comparison`."""
    mine = pd.DataFrame({keys.TASK_ID: ours[keys.TASK_ID], keys.CYCLOMATIC_COMPLEXITY: ours[keys.CYCLOMATIC_COMPLEXITY],
                         "passed": passed.astype(bool).to_numpy()})
    theirs = pd.DataFrame({keys.TASK_ID: base[keys.TASK_ID], "base_passed": base_passed.astype(bool).to_numpy()})
    merged = mine.merge(theirs, on=keys.TASK_ID, how="inner").sort_values(keys.TASK_ID, ignore_index=True)
    merged.insert(2, "complexity_group", merged[keys.CYCLOMATIC_COMPLEXITY].map(complexity_group))
    merged["agree"] = merged["passed"] == merged["base_passed"]
    shared = ours[keys.TASK_ID].isin(merged[keys.TASK_ID]), base[keys.TASK_ID].isin(merged[keys.TASK_ID])
    frame = merged[[keys.CYCLOMATIC_COMPLEXITY]]
    return (
        int((~shared[0]).sum()),
        int((~shared[1]).sum()),
        pass_rates(frame.assign(**{keys.TEST_PASSED: merged["passed"]})),
        pass_rates(frame.assign(**{keys.TEST_PASSED: merged["base_passed"]})),
        merged,
    )
