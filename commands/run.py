"""``python cli.py run``: every stage in order, resumable, one set of settings."""

from __future__ import annotations

from pathlib import Path

import click

from artifacts.layout import DEFAULT_MODEL, MBPP_ENV, TASK_IDS_ENV
from commands.options import CLIError, data_dir_option, layers_options, translate_errors
from pipeline.run import DEMO_PRESET, RunSettings, StageFailed, apply_preset, run_pipeline

_PATH = click.Path(path_type=Path)


@click.command("run")
@click.option("--preset", type=click.Choice([DEMO_PRESET]), default=None,
              help="demo: the SmolLM2-135M-Instruct demo model (prepared when missing), the first 20 "
              "problems, 512 new tokens, --verify 4, --enforce-eager; explicit options still win.")
@click.option("--model", default=None, help=f"Hub id or local checkpoint folder [default: {DEFAULT_MODEL}, or the preset's].")
@click.option("--mbpp", type=_PATH, envvar=MBPP_ENV, default=None, help=f"MBPP file for split [env {MBPP_ENV}].")
@click.option("--task-ids", type=_PATH, envvar=TASK_IDS_ENV, default=None,
              help=f"Validation task ids for split [env {TASK_IDS_ENV}].")
@click.option("--start", type=int, default=None, help="First problem row to generate (0-indexed).")
@click.option("--end", type=int, default=None, help="Last problem row to generate (inclusive).")
@click.option("--limit", type=int, default=None, help="At most this many problems.")
@click.option("--prompt-style", type=click.Choice(["raw", "chat"]), default=None, help="[generate default: raw]")
@click.option("--max-new-tokens", type=int, default=None, help="[generate default: 2000]")
@click.option("--dtype", default=None, help="float32 / bfloat16 / float16 [default: float32 on CPU, bfloat16 on GPU].")
@click.option("--max-model-len", type=int, default=None, help="vLLM context length.")
@click.option("--tensor-parallel-size", type=int, default=None, help="vLLM tensor parallelism (GPUs per replica).")
@click.option("--data-parallel-size", type=int, default=None, help="vLLM data parallelism (replicas).")
@click.option("--deterministic", is_flag=True, help="Batch-invariant generation where supported, no prefix caching.")
@click.option("--enforce-eager", is_flag=True, help="vLLM without graph capture (faster start).")
@click.option("--chunk-size", type=int, default=None, help="Problems per committed generation chunk.")
@click.option("--device", type=click.Choice(["auto", "cpu", "cuda"]), default=None, help="Replay device.")
@click.option("--hook-point", type=click.Choice(["resid_post", "resid_pre"]), default=None,
              help="Replay hook point [default: resid_post].")
@click.option("--replay-batch-size", type=int, default=None, help="Sequences per replay forward pass.")
@click.option("--verify", type=int, default=None, help="Replay check against Hugging Face on N tasks.")
@click.option("--workers", type=int, default=None, help="Parallel sandboxes [default: CPU count].")
@click.option("--timeout", type=float, default=None, help="Seconds per program in the sandbox.")
@click.option("--sandbox", type=click.Choice(["bwrap", "process"]), default=None, help="[evaluate default: bwrap]")
@click.option("--compare", type=_PATH, default=None, help="A base-model dataset parquet for the report.")
@layers_options
@data_dir_option
@translate_errors
def run(preset: str | None, **options: object) -> None:
    """Run split (when missing), generate, replay-activations, evaluate and report.

    Each stage runs in its own process and resumes where an earlier run stopped, so a
    rerun after a crash (or after success) only does what is missing.
    """
    settings = apply_preset(RunSettings(**options), preset)  # type: ignore[arg-type]
    try:
        timings = run_pipeline(settings, echo=click.echo)
    except StageFailed as exc:
        raise CLIError(str(exc)) from None
    total = sum(t.seconds for t in timings)
    parts = ", ".join(f"{t.name} {t.seconds:.1f}s" if t.ran else f"{t.name} skipped" for t in timings)
    click.echo(f"pipeline finished in {total:.1f}s ({parts})")
