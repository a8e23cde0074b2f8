"""``python cli.py generate``: greedy completions with vLLM into generations.parquet."""

from __future__ import annotations

from pathlib import Path

import click

from artifacts.device import DTYPE_NAMES
from artifacts.layout import DEFAULT_MODEL, Layout
from commands.options import data_dir_option, translate_errors
from gen.generate import DEFAULT_MAX_NEW_TOKENS, DEFAULT_SEED, generate as run_generate
from gen.stop_tokens import DEFAULT_STOP_POLICY, StopPolicy
from gen.stream import DEFAULT_COMMIT_EVERY, DEFAULT_COMMIT_SECONDS
from problems.prompts import DEFAULT_PROMPT_STYLE, PromptStyle

CHUNK_SIZE_DEPRECATION = (
    "--chunk-size is deprecated: generation now streams every prompt at once and commits as completions "
    "finish; it is read as --commit-every {value}"
)


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
              show_default=True,
              help="raw prompt text; the model's chat template; or raw-double-assert, the earlier phases' buggy "
                   "prompt ('assert assert ...'), to compare with data made before its fix.")
@click.option("--stop", type=click.Choice([s.value for s in StopPolicy]), default=DEFAULT_STOP_POLICY.value,
              show_default=True,
              help="end-of-turn: every eos id of the model's generation config; eos-only: the tokenizer's EOS alone, "
                   "as the earlier phases and the 7.6 steering code (runs past <end_of_turn>).")
@click.option("--dtype", type=click.Choice(DTYPE_NAMES), default=None,
              help="Weights and activations dtype [default: float32 on CPU, bfloat16 on GPU].")
@click.option("--max-model-len", type=int, default=None, help="Context length for vLLM [default: the model's].")
@click.option("--tensor-parallel-size", default=1, show_default=True, help="GPUs per model replica (vLLM tensor parallelism).")
@click.option("--data-parallel-size", default=1, show_default=True,
              help="Model replicas, each on its own GPUs or cores, fed from one queue of pending problems.")
@click.option("--output-dir", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Output folder [default: DATA_DIR/phase7_3].")
@click.option("--overwrite", is_flag=True, help="Discard earlier output instead of resuming.")
@click.option("--deterministic", is_flag=True,
              help="Prefix caching off and vLLM's batch-invariant mode where the device supports it.")
@click.option("--enforce-eager/--no-enforce-eager", default=None,
              help="Skip vLLM's compilation and graph capture [default: on for CPU (compiling cost minutes there "
                   "and decoded no faster), off for GPUs].")
@click.option("--commit-every", type=click.IntRange(min=1), default=DEFAULT_COMMIT_EVERY, show_default=True,
              help="Commit finished completions atomically once this many are waiting.")
@click.option("--commit-seconds", type=click.FloatRange(min=0, min_open=True), default=DEFAULT_COMMIT_SECONDS,
              show_default=True, help="...or once this many seconds have passed since the last commit.")
@click.option("--chunk-size", type=click.IntRange(min=1), default=None, hidden=True,
              help="Deprecated alias of --commit-every.")
@click.option("--seed", default=DEFAULT_SEED, show_default=True, help="vLLM seed (greedy decoding does not sample).")
@data_dir_option
@translate_errors
def generate(
    problems_path: Path | None, output_dir: Path | None, data_dir: Path, chunk_size: int | None, **options: object
) -> None:
    """Write generations.parquet and generations_metadata.json (resumes an interrupted run)."""
    if chunk_size is not None:
        click.echo(CHUNK_SIZE_DEPRECATION.format(value=chunk_size), err=True)
        options["commit_every"] = chunk_size
    layout = Layout(data_dir)
    result = run_generate(
        problems_path=problems_path or layout.problems,
        output_dir=output_dir or layout.phase7_3,
        **options,  # type: ignore[arg-type]
    )
    if result.n_generated == 0 and result.n_skipped:
        click.echo(f"nothing to do: all {result.n_skipped} selected problems are already in {result.parquet_path}")
        return
    seqs = f", at most {result.max_num_seqs} at once" if result.max_num_seqs else ""
    click.echo(
        f"problems {result.n_generated} generated, {result.n_skipped} already done, {result.n_excluded} excluded | "
        f"tokens {result.n_completion_tokens} | wall {result.wall_time_s:.1f}s "
        f"(engine start {result.engine_load_time_s:.1f}s, generation {result.generation_time_s:.1f}s{seqs}) | "
        f"{result.tokens_per_s:.1f} tok/s -> {result.parquet_path}"
    )
