"""Set a base-model dataset (same columns, e.g. the Phase 3.5 parquet) beside ours, task by task.

Pass rates are compared on the tasks both datasets hold, grouped by our
``cyclomatic_complexity`` (the same problems have the same reference solution), so a
difference in the task sets cannot masquerade as a difference in skill.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from artifacts.layout import DATASET_METADATA_FILE
from report.load import read_dataset, read_optional_json
from report.stats import PassRate, complexity_group, pass_rates

BASE_REQUIRED = ("task_id", "test_passed")


@dataclass(frozen=True)
class Comparison:
    """Our dataset against a base-model dataset on their shared tasks.

    ``per_task`` has one row per shared task: ``task_id``, ``cyclomatic_complexity``,
    ``complexity_group``, ``passed`` (ours), ``base_passed``, ``agree``.
    """

    base_path: Path
    label: str
    base_label: str
    n_only_ours: int
    n_only_base: int
    rates: tuple[PassRate, ...]
    base_rates: tuple[PassRate, ...]
    per_task: pd.DataFrame

    @property
    def n_shared(self) -> int:
        return len(self.per_task)

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
        """Agreement beyond chance; None when chance agreement is already perfect."""
        if not self.n_shared:
            return None
        p_ours = float(self.per_task["passed"].mean())
        p_base = float(self.per_task["base_passed"].mean())
        expected = p_ours * p_base + (1 - p_ours) * (1 - p_base)
        if expected >= 1.0:
            return None
        return (float(self.agreement) - expected) / (1.0 - expected)


def compare_datasets(ours: pd.DataFrame, base_path: Path, *, label: str = "instruct") -> Comparison:
    """Compare ``ours`` (the evaluated dataset) with the dataset at ``base_path``.

    Args:
        ours: our dataset (``task_id``, ``test_passed``, ``cyclomatic_complexity``).
        base_path: parquet with at least ``task_id`` and ``test_passed``, one row per task.
        label: name of our model in tables and plots.

    Returns:
        The comparison; the base is named after the ``model_name`` of a ``metadata.json``
        beside it, else "base (<file stem>)".
    """
    base_path = Path(base_path)
    base = read_dataset(base_path, required=BASE_REQUIRED)
    merged = ours[["task_id", "cyclomatic_complexity", "test_passed"]].merge(
        base[["task_id", "test_passed"]].rename(columns={"test_passed": "base_passed"}), on="task_id", how="inner"
    )
    merged = merged.rename(columns={"test_passed": "passed"}).sort_values("task_id", ignore_index=True)
    merged.insert(
        2,
        "complexity_group",
        merged["cyclomatic_complexity"].map(lambda cc: None if pd.isna(cc) else complexity_group(int(cc)).value),
    )
    merged["agree"] = merged["passed"] == merged["base_passed"]
    shared = set(merged["task_id"])
    base_label = _base_label(base_path)
    if base_label == label:
        base_label = f"{base_label} (base)"
    base_frame = merged[["cyclomatic_complexity"]].assign(test_passed=merged["base_passed"])
    return Comparison(
        base_path=base_path,
        label=label,
        base_label=base_label,
        n_only_ours=int((~ours["task_id"].isin(shared)).sum()),
        n_only_base=int((~base["task_id"].isin(shared)).sum()),
        rates=pass_rates(merged[["cyclomatic_complexity"]].assign(test_passed=merged["passed"])),
        base_rates=pass_rates(base_frame),
        per_task=merged,
    )


def _base_label(base_path: Path) -> str:
    model = (read_optional_json(base_path.parent / DATASET_METADATA_FILE) or {}).get("model_name")
    return Path(str(model)).name if model else f"base ({base_path.stem})"
