"""``python cli.py evaluate``: run every completion's tests in a sandbox, write the dataset."""

from __future__ import annotations

from pathlib import Path

import click

from artifacts.layout import GENERATIONS_FILE, Layout
from commands.options import data_dir_option, layer_folders, layers_options, translate_errors
from evaluate.batch import default_workers
from evaluate.sandbox import Limits, SandboxKind
from evaluate.score import evaluate_generations

DEFAULT_LIMITS = Limits()
PROCESS_WARNING = (
    "warning: --sandbox process runs generated code WITHOUT isolation (resource limits only): "
    "it can read your files, use the network and signal your processes"
)


@click.command("evaluate")
@click.option(
    "--generations",
    "generations_path",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Table with task_id and completion columns (.parquet, .jsonl, .json, .csv) "
    f"[default: OUTPUT_DIR/{GENERATIONS_FILE}].",
)
@click.option(
    "--problems",
    "problems_path",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Problems parquet [default: DATA_DIR/phase0_1/validation_mbpp.parquet].",
)
@click.option(
    "--output-dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Where the dataset and metadata.json go [default: DATA_DIR/phase7_3].",
)
@click.option(
    "--workers",
    type=click.IntRange(min=1),
    default=None,
    help=f"Programs run in parallel [default: CPU count, here {default_workers()}].",
)
@click.option(
    "--timeout",
    type=click.FloatRange(min=0.1),
    default=DEFAULT_LIMITS.timeout_s,
    show_default=True,
    help="Wall-clock seconds per program (all its tests); the whole process tree is killed.",
)
@click.option(
    "--sandbox",
    type=click.Choice([k.value for k in SandboxKind]),
    default=SandboxKind.BWRAP.value,
    show_default=True,
    help="bwrap: isolated with bubblewrap. process: resource limits only, NOT isolated.",
)
@layers_options
@data_dir_option
@translate_errors
def evaluate(
    generations_path: Path | None,
    problems_path: Path | None,
    output_dir: Path | None,
    workers: int | None,
    timeout: float,
    sandbox: str,
    phase2_10_dir: Path | None,
    phase2_5_dir: Path | None,
    layers: str | None,
    data_dir: Path,
) -> None:
    """Score each completion against its MBPP tests; write dataset_instruct_temp_0_0.parquet and metadata.json.

    A crashed run resumes from the finished programs; a finished run is redone from scratch.
    """
    layout = Layout(data_dir)
    output_dir = output_dir or layout.phase7_3
    if sandbox == SandboxKind.PROCESS.value:
        click.echo(PROCESS_WARNING, err=True)
    result = evaluate_generations(
        generations_path=generations_path or output_dir / GENERATIONS_FILE,
        problems_path=problems_path or layout.problems,
        output_dir=output_dir,
        layer_folders=layer_folders(layout, phase2_10_dir, phase2_5_dir),
        layers=layers,
        sandbox=sandbox,
        limits=Limits(timeout_s=timeout),
        workers=workers,
    )
    for line in result.metadata["sandbox"].get("warnings", []):
        click.echo(line, err=True)
    stats = result.metadata["stats"]
    errors = ", ".join(f"{k} {v}" for k, v in stats["error_types"].items() if v)
    click.echo(
        f"wrote {result.dataset_path} ({result.metadata['n_tasks_included']} tasks, "
        f"{stats['n_correct']} passed, pass rate {stats['pass_rate']:.1%}"
        + (f"; failures: {errors}" if errors else "")
        + f") in {result.metadata['evaluation_wall_time_s']:.1f}s"
    )
