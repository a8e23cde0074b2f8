"""Front door of the report: read inputs, compute statistics, write plots, tables and report.md.

Every file is written atomically; ``report.md`` comes last so that it never links a plot
that is not there, and report files of an earlier run that no longer apply (a layer no
longer extracted, a comparison not asked for) are removed.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import pandas as pd

from artifacts.files import atomic_path
from artifacts.layout import ACTIVATIONS_SUBDIR
from artifacts.schema.features import FEATURES_SUBDIR
from report.compare import Comparison, compare_datasets
from report.features import features_section
from report.load import load_inputs
from report.markdown import render_console, render_markdown
from report.plots import plot_completion_lengths, plot_layer, plot_pass_rates
from report.stats import ReportStats, compute_stats

REPORT_FILE = "report.md"
PASS_RATE_PLOT = "pass_rate_by_complexity.png"
COMPLETION_LENGTH_PLOT = "completion_length.png"
COMPARE_TABLE = "compare_tasks.csv"
# Files this module owns in the output folder (stale ones are removed).
OWNED_PATTERNS = (REPORT_FILE, PASS_RATE_PLOT, COMPLETION_LENGTH_PLOT, COMPARE_TABLE, "layer_*_separation.png")


def layer_plot_name(layer: int) -> str:
    """File name of one layer's separation plot."""
    return f"layer_{layer:02d}_separation.png"


@dataclass(frozen=True)
class ReportResult:
    """What :func:`build_report` wrote and the console summary it prepared."""

    output_dir: Path
    report_path: Path
    files: tuple[Path, ...]
    summary: str
    stats: ReportStats
    comparisons: tuple[Comparison, ...]


def build_report(
    *,
    dataset_path: Path,
    output_dir: Path,
    activations_dir: Path | None = None,
    compare_path: Path | None = None,
) -> ReportResult:
    """Write ``report.md``, the PNG plots and (with a comparison) ``compare_tasks.csv``.

    Args:
        dataset_path: the evaluated dataset parquet; its folder also holds ``metadata.json``,
            ``generations.parquet`` and ``generations_metadata.json`` (each optional).
        output_dir: destination folder (created when missing).
        activations_dir: folder with ``activations_metadata.json`` and ``task_activations/``
            [default: ``activations/`` beside the dataset].
        compare_path: a base-model dataset parquet to set beside ours (one comparison per
            verdict both carry, see :func:`report.compare.compare_datasets`).

    Returns:
        The files written and the console summary.
    """
    dataset_path = Path(dataset_path)
    output_dir = Path(output_dir)
    inputs = load_inputs(
        dataset_path=dataset_path,
        activations_dir=activations_dir or dataset_path.parent / ACTIVATIONS_SUBDIR,
    )
    stats = compute_stats(inputs)
    label = Path(stats.model).name if stats.model else "this dataset"
    comparisons = (
        compare_datasets(inputs.dataset, compare_path, label=label, ours_metadata=inputs.metadata)
        if compare_path
        else ()
    )

    output_dir.mkdir(parents=True, exist_ok=True)
    plots: dict[str, str] = {}
    if not comparisons:
        series, title = [(label, stats.pass_rates)], "Pass rate by complexity group"
    else:
        first = comparisons[0]  # the robust verdict when both datasets carry it
        series = [
            (f"{label} ({first.verdict})", first.rates),
            (f"{first.base_label} ({first.base_verdict})", first.base_rates),
        ]
        title = f"Pass rate by complexity group ({first.n_shared} shared tasks)"
    plot_pass_rates(series, output_dir / PASS_RATE_PLOT, title=title)
    plots["pass_rate"] = PASS_RATE_PLOT
    if stats.completion_lengths is not None:
        plot_completion_lengths(stats.completion_lengths, output_dir / COMPLETION_LENGTH_PLOT)
        plots["completion_length"] = COMPLETION_LENGTH_PLOT
    for sep in stats.layers:
        name = layer_plot_name(sep.layer)
        plot_layer(sep, output_dir / name, hook_point=stats.hook_point)
        plots[f"layer_{sep.layer}"] = name
    written = [output_dir / name for name in plots.values()]
    if comparisons:
        table = pd.concat(
            [c.per_task.assign(verdict=c.verdict, base_verdict=c.base_verdict) for c in comparisons], ignore_index=True
        )
        with atomic_path(output_dir / COMPARE_TABLE) as tmp:
            table.to_csv(tmp, index=False)
        written.append(output_dir / COMPARE_TABLE)

    report_path = output_dir / REPORT_FILE
    _remove_stale(output_dir, keep={*written, report_path})
    text = render_markdown(
        stats,
        dataset_path=str(dataset_path),
        plots=plots,
        comparisons=comparisons,
        created=datetime.now(timezone.utc).isoformat(timespec="seconds"),
    )
    # The SAE-feature section, when the features stage has run (its files beside the dataset).
    section = features_section(dataset_path.parent / FEATURES_SUBDIR, output_dir)
    if section is not None:
        text += "\n" + "\n".join(section.markdown).rstrip() + "\n"
        written += section.files
    with atomic_path(report_path) as tmp:
        tmp.write_text(text)
    return ReportResult(
        output_dir=output_dir,
        report_path=report_path,
        files=(*written, report_path),
        summary="\n".join([render_console(stats, comparisons), *(section.console if section else ())]),
        stats=stats,
        comparisons=comparisons,
    )


def _remove_stale(output_dir: Path, *, keep: set[Path]) -> None:
    for pattern in OWNED_PATTERNS:
        for path in output_dir.glob(pattern):
            if path not in keep and path.is_file():
                path.unlink()
