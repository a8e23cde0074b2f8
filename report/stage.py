"""The report stage: read inputs, compute statistics, write plots, tables and report.md.

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
from artifacts.records import stage_run
from report.compare import Comparison, compare_datasets
from report.config import (
    COMPARE_TABLE, COMPLETION_LENGTH_PLOT, OWNED_PATTERNS, PASS_RATE_PLOT, REPORT_FILE, ReportConfig, layer_plot_name,
)
from report.features import features_section
from report.load import load_inputs
from report.markdown import render_console, render_markdown
from report.plots import plot_completion_lengths, plot_layer, plot_pass_rates
from report.stats import ReportStats, compute_stats


@dataclass(frozen=True)
class ReportResult:
    """What the report wrote and the console summary it prepared."""

    output_dir: Path
    report_path: Path
    files: tuple[Path, ...]
    console: str
    stats: ReportStats

    def summary(self) -> str:
        return f"{self.console}\nwrote {self.report_path} and {len(self.files) - 1} more file(s) in {self.output_dir}"


def run(config: ReportConfig) -> ReportResult:
    """Write ``report.md``, the PNG plots and (with ``--compare``) ``compare_tasks.csv`` under the stage's record.

    Inputs: see :mod:`report.load`; the features stage's output beside the dataset adds its
    section (:mod:`report.features`); ``--compare``: :func:`report.compare.compare_datasets`.
    """
    # Read before the record, so that bad input leaves no folder behind.
    inputs = load_inputs(dataset_path=config.dataset, activations_dir=config.activations)
    stats = compute_stats(inputs)
    label = Path(stats.model).name if stats.model else "this dataset"
    comparisons = (compare_datasets(inputs.dataset, config.compare_path, label=label, ours_metadata=inputs.metadata)
                   if config.compare_path else ())
    with stage_run(config, overwrite=config.overwrite):
        out = config.folder
        out.mkdir(parents=True, exist_ok=True)
        plots = _write_plots(stats, comparisons, out, label=label)
        written = [out / name for name in plots.values()]
        if comparisons:
            table = pd.concat([c.per_task.assign(verdict=c.verdict, base_verdict=c.base_verdict) for c in comparisons],
                              ignore_index=True)
            with atomic_path(out / COMPARE_TABLE) as tmp:
                table.to_csv(tmp, index=False)
            written.append(out / COMPARE_TABLE)
        report_path = out / REPORT_FILE
        stale = {p for pattern in OWNED_PATTERNS for p in out.glob(pattern) if p.is_file()} - {*written, report_path}
        for path in stale:  # a layer no longer extracted, a comparison not asked for
            path.unlink()
        text = render_markdown(stats, dataset_path=str(config.dataset), plots=plots, comparisons=comparisons,
                               created=datetime.now(timezone.utc).isoformat(timespec="seconds"))
        section = features_section(config.features_dir, out)
        if section is not None:
            text += "\n" + "\n".join(section.markdown).rstrip() + "\n"
        with atomic_path(report_path) as tmp:
            tmp.write_text(text)
    files = (*written, *(section.files if section else ()), report_path)
    console = "\n".join([render_console(stats, comparisons), *(section.console if section else ())])
    return ReportResult(out, report_path, files, console, stats)


def _write_plots(stats: ReportStats, comparisons: tuple[Comparison, ...], out: Path, *, label: str) -> dict[str, str]:
    """The pass-rate, completion-length and per-layer plots: ``{plot key: file name}``."""
    if not comparisons:
        series, title = [(label, stats.pass_rates)], "Pass rate by complexity group"
    else:
        first = comparisons[0]  # the robust verdict when both datasets carry it
        series = [(f"{label} ({first.verdict})", first.rates), (f"{first.base_label} ({first.base_verdict})",
                                                                 first.base_rates)]
        title = f"Pass rate by complexity group ({first.n_shared} shared tasks)"
    plot_pass_rates(series, out / PASS_RATE_PLOT, title=title)
    plots = {"pass_rate": PASS_RATE_PLOT}
    if stats.completion_lengths is not None:
        plot_completion_lengths(stats.completion_lengths, out / COMPLETION_LENGTH_PLOT)
        plots["completion_length"] = COMPLETION_LENGTH_PLOT
    for sep in stats.layers:
        plot_layer(sep, out / layer_plot_name(sep.layer), hook_point=stats.hook_point)
        plots[f"layer_{sep.layer}"] = layer_plot_name(sep.layer)
    return plots
