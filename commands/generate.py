"""``python cli.py generate``: greedy completions with vLLM into generations.parquet."""

from __future__ import annotations

from pathlib import Path

import click

from artifacts.layout import DEFAULT_MODEL, Layout
from commands.options import data_dir_option, translate_errors
from gen.engine import VALID_DTYPES
from gen.generate import DEFAULT_CHUNK_SIZE, DEFAULT_MAX_NEW_TOKENS, DEFAULT_SEED, generate as run_generate
from problems.prompts import DEFAULT_PROMPT_STYLE, PromptStyle


@click.command("generate")
@click.option("--model", default=DEFAULT_MODEL, show_default=True, help="Hugging Face hub id or local checkpoint folder.")
@click.option("--revision", default=None, help="Hub revision (branch, tag or commit) of --model.")
@click.option("--problems", "problems_path", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Problems parquet [default: DATA_DIR/phase0_1/validation_mbpp.parquet].")
@click.option("--start", type=int, default=None, help="First row of the problems file (0-indexed).")
@click.option("--end", type=int, default=None, help="Last row of the problems file (inclusive).")
@click.option("--limit", type=int, default=None, help="At most this many problems (after --start).")
@click.option("--max-new-tokens", default=DEFAULT_MAX_NEW_TOKENS, show_default=True, help="Generation budget per problem.")
@click.option("--prompt-style", type=click.Choice([s.value for s in PromptStyle]), default=DEFAULT_PROMPT_STYLE.value,
              show_default=True, help="raw prompt text, or the model's chat template.")
@click.option("--dtype", type=click.Choice(VALID_DTYPES), default=None,
              help="Weights and activations dtype [default: float32 on CPU, bfloat16 on GPU].")
@click.option("--max-model-len", type=int, default=None, help="Context length for vLLM [default: the model's].")
@click.option("--tensor-parallel-size", default=1, show_default=True, help="GPUs per model replica (vLLM tensor parallelism).")
@click.option("--data-parallel-size", default=1, show_default=True, help="Model replicas, each on its own GPUs or cores.")
@click.option("--output-dir", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Output folder [default: DATA_DIR/phase7_3].")
@click.option("--overwrite", is_flag=True, help="Discard earlier output instead of resuming.")
@click.option("--deterministic", is_flag=True,
              help="Prefix caching off and vLLM's batch-invariant mode where the device supports it.")
@click.option("--enforce-eager", is_flag=True, help="No graph capture or compilation: faster start (tests).")
@click.option("--chunk-size", default=DEFAULT_CHUNK_SIZE, show_default=True,
              help="Problems per engine call; each finished chunk is committed atomically.")
@click.option("--seed", default=DEFAULT_SEED, show_default=True, help="vLLM seed (greedy decoding does not sample).")
@data_dir_option
@translate_errors
def generate(problems_path: Path | None, output_dir: Path | None, data_dir: Path, **options: object) -> None:
    """Write generations.parquet and generations_metadata.json (resumes an interrupted run)."""
    layout = Layout(data_dir)
    result = run_generate(
        problems_path=problems_path or layout.problems,
        output_dir=output_dir or layout.phase7_3,
        **options,  # type: ignore[arg-type]
    )
    if result.n_generated == 0 and result.n_skipped:
        click.echo(f"nothing to do: all {result.n_skipped} selected problems are already in {result.parquet_path}")
        return
    click.echo(
        f"problems {result.n_generated} generated, {result.n_skipped} already done, {result.n_excluded} excluded | "
        f"tokens {result.n_completion_tokens} | wall {result.wall_time_s:.1f}s "
        f"(engine start {result.engine_load_time_s:.1f}s, generation {result.generation_time_s:.1f}s) | "
        f"{result.tokens_per_s:.1f} tok/s -> {result.parquet_path}"
    )
