"""``python cli.py split``: build the validation problems parquet."""

from __future__ import annotations

from pathlib import Path

import click

from artifacts.layout import MBPP_ENV, TASK_IDS_ENV, Layout
from commands.options import data_dir_option, translate_errors
from problems.split import DEFAULT_SEED, build_validation_split


@click.command("split")
@click.option(
    "--mbpp",
    "mbpp_path",
    type=click.Path(dir_okay=False, path_type=Path),
    envvar=MBPP_ENV,
    default=None,
    help=f"MBPP file (.jsonl, .json array or .parquet) [env {MBPP_ENV}]. "
    "Without it, google-research-datasets/mbpp is downloaded from the Hugging Face hub.",
)
@click.option(
    "--task-ids",
    "task_ids_path",
    type=click.Path(dir_okay=False, path_type=Path),
    envvar=TASK_IDS_ENV,
    default=None,
    help=f"JSON list of validation task ids [env {TASK_IDS_ENV}]. Without it, the "
    "stratified complexity split is recomputed.",
)
@click.option("--seed", default=DEFAULT_SEED, show_default=True, help="Seed of the stratified split.")
@click.option(
    "--output-dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Destination folder [default: DATA_DIR/phase0_1].",
)
@data_dir_option
@translate_errors
def split(mbpp_path: Path | None, task_ids_path: Path | None, seed: int, output_dir: Path | None, data_dir: Path) -> None:
    """Write validation_mbpp.parquet and split_metadata.json (the problems of every later stage)."""
    result = build_validation_split(
        mbpp_path=mbpp_path,
        task_ids_path=task_ids_path,
        output_dir=output_dir or Layout(data_dir).phase0_1,
        seed=seed,
    )
    cc = result.metadata["complexity"]
    click.echo(
        f"wrote {result.parquet_path} ({len(result.problems)} problems, "
        f"complexity {cc['min']}..{cc['max']}, mean {cc['mean']:.2f}) from {result.metadata['source']}"
    )
