"""``python cli.py report``: console summary, report.md and PNG plots of the evaluated dataset."""

from __future__ import annotations

from pathlib import Path

import click

from artifacts.layout import DATASET_FILE, REPORT_SUBDIR, Layout
from commands.options import data_dir_option, translate_errors
from report.build import build_report


@click.command("report")
@click.option(
    "--dataset",
    "dataset_path",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help=f"Evaluated dataset; metadata.json, generations.parquet and generations_metadata.json "
    f"are read beside it when present [default: DATA_DIR/phase7_3/{DATASET_FILE}].",
)
@click.option(
    "--activations-dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Folder with activations_metadata.json and task_activations/ "
    "[default: activations/ beside the dataset].",
)
@click.option(
    "--compare",
    "compare_path",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="A base-model dataset parquet with the same columns (e.g. Phase 3.5) to set side by side, "
    "per task agreement included.",
)
@click.option(
    "--output-dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help=f"Destination folder [default: DATA_DIR/phase7_3/{REPORT_SUBDIR}].",
)
@data_dir_option
@translate_errors
def report(
    dataset_path: Path | None,
    activations_dir: Path | None,
    compare_path: Path | None,
    output_dir: Path | None,
    data_dir: Path,
) -> None:
    """Summarize pass rates, outcomes, costs and activation signal; write report.md and plots."""
    layout = Layout(data_dir)
    result = build_report(
        dataset_path=dataset_path or layout.phase7_3 / DATASET_FILE,
        output_dir=output_dir or layout.phase7_3 / REPORT_SUBDIR,
        activations_dir=activations_dir,
        compare_path=compare_path,
    )
    click.echo(result.summary)
    click.echo(f"wrote {result.report_path} and {len(result.files) - 1} more file(s) in {result.output_dir}")
