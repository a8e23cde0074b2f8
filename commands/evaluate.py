"""``python cli.py evaluate``: run every completion's tests in a sandbox, write the dataset."""

from __future__ import annotations

from pathlib import Path

import click

from artifacts.layout import GENERATIONS_FILE, Layout
from artifacts.schema import dataset as keys
from commands.options import data_dir_option, layer_folders, layers_options, translate_errors
from evaluate.batch import default_workers
from evaluate.outcomes import Verdict
from evaluate.sandbox import Limits, SandboxKind
from evaluate.score import MODEL_TYPES, evaluate_generations

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
    "--completion-column",
    default=keys.COMPLETION,
    show_default=True,
    help="Column of --generations holding the model output (e.g. generated_code in the earlier phases' parquets).",
)
@click.option(
    "--model-type",
    type=click.Choice(MODEL_TYPES),
    default=keys.MODEL_TYPE_INSTRUCT,
    show_default=True,
    help="What made the completions: recorded in metadata.json and naming the dataset "
    f"({keys.DATASET_FILES[keys.MODEL_TYPE_INSTRUCT]} or {keys.DATASET_FILES[keys.MODEL_TYPE_BASE]}).",
)
@click.option(
    "--verdict",
    type=click.Choice([v.value for v in Verdict]),
    default=Verdict.ROBUST.value,
    show_default=True,
    help="Which verdict fills test_passed (both are computed and kept): robust (extracted code, "
    "test_setup_code, values compared outside the sandbox) or legacy (the earlier tool's rules, "
    "as the base baseline and the 7.6 steering code used).",
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
    completion_column: str,
    model_type: str,
    verdict: str,
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
    """Score each completion against its MBPP tests; write the dataset parquet and metadata.json.

    Every completion is scored under both verdicts (robust and legacy); --verdict picks the one
    in test_passed. A crashed run resumes from the finished programs; a finished run is redone
    from scratch.
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
        verdict=verdict,
        completion_column=completion_column,
        model_type=model_type,
    )
    for line in result.metadata[keys.SANDBOX].get("warnings", []):
        click.echo(line, err=True)
    meta = result.metadata
    stats = meta[keys.STATS]
    errors = ", ".join(f"{k} {v}" for k, v in stats[keys.STATS_ERROR_TYPES].items() if v)
    n = meta[keys.N_TASKS_INCLUDED]
    by_verdict = ", ".join(f"{v} {c[keys.STATS_N_CORRECT]}/{n}" for v, c in meta[keys.VERDICTS].items())
    click.echo(
        f"wrote {result.dataset_path} ({n} tasks, {stats[keys.STATS_N_CORRECT]} passed, "
        f"pass rate {stats[keys.STATS_PASS_RATE]:.1%} under --verdict {meta[keys.VERDICT]}"
        + (f"; failures: {errors}" if errors else "")
        + f") in {meta[keys.EVALUATION_WALL_TIME_S]:.1f}s"
    )
    click.echo(
        f"passed by verdict: {by_verdict}; tests decided outside the sandbox: "
        f"{meta[keys.META_N_TESTS_TRUSTED]}/{meta[keys.META_N_TESTS]}"
    )
