"""pva-baseline command line: ``python cli.py COMMAND --help`` explains each stage.

A stage command's options are its settings dataclass' fields; it calls the stage's
``run(config)`` (the call a notebook makes) and prints the result's summary.
"""

from __future__ import annotations

from typing import Any

import click

from artifacts.errors import InputError
from artifacts.layout import default_data_dir
from pipeline.options import click_params, derive_run_options, given, run_click_option
from pipeline.stages import PIPELINE, STAGES, StageEntry


class CLIError(click.ClickException):
    """A one-line error on stderr and exit code 2 (bad input), no traceback."""

    exit_code = 2


def stage_command(entry: StageEntry) -> click.Command:
    """The click command of one stage, its options derived from the stage's config fields."""
    cls = entry.config_class()

    def callback(**_: Any) -> None:
        ctx = click.get_current_context()
        try:
            result = entry.run(cls.from_mapping(given(ctx, list(ctx.params))))
        except InputError as exc:
            raise CLIError(str(exc)) from None
        click.echo(result.summary())

    return click.Command(entry.name, callback=callback, params=click_params(cls), help=cls.__doc__)


def run_command() -> click.Command:
    """``run``: every stage's options (named by :mod:`pipeline.options`), the stages in order."""
    from pipeline.run import DEMO_PRESET, StageFailed, apply_preset, build_configs, check_sandbox, run_pipeline

    configs = {s.name: s.config_class() for s in PIPELINE}
    options = derive_run_options(list(configs.items()))

    def callback(preset: str | None, **_: Any) -> None:
        ctx = click.get_current_context()
        try:
            values = {"data_dir": default_data_dir(), **given(ctx, list(options))}
            values, prepare = apply_preset(values, preset, data_dir=values["data_dir"])
            check_sandbox(values)
            timings = run_pipeline(build_configs(values, options, prepare_demo_model=prepare), echo=click.echo)
        except (InputError, StageFailed) as exc:
            raise CLIError(str(exc)) from None
        total = sum(t.seconds for t in timings)
        parts = ", ".join(f"{t.name} {t.seconds:.1f}s" if t.ran else f"{t.name} skipped" for t in timings)
        click.echo(f"pipeline finished in {total:.1f}s ({parts})")

    preset = click.Option(
        ["--preset"], type=click.Choice([DEMO_PRESET]), default=None,
        help="demo: the SmolLM2-135M-Instruct demo model (prepared when missing), the first 20 problems, "
        "512 new tokens, --verify 4, --enforce-eager, stand-in SAEs (--demo-saes); explicit options still win.")
    return click.Command(
        "run", callback=callback, params=[preset, *(run_click_option(o, configs) for o in options.values())],
        help="Run split, generate, replay-activations, evaluate, features and report in order.\n\n"
        "Each stage runs in its own process and resumes where an earlier run stopped; a stage whose completion "
        "record matches its settings, inputs and code is skipped without starting a process. Every stage option "
        "is accepted here (the stages it feeds are named in brackets).")


class LazyGroup(click.Group):
    """Builds a command only when it is used, so ``evaluate --help`` does not import torch or vLLM."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return [*STAGES, "run"]

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name == "run":
            return run_command()
        return stage_command(STAGES[cmd_name]) if cmd_name in STAGES else None


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
def cli() -> None:
    """Build the instruction-tuned PVA baseline dataset on the MBPP validation split.

    Stages in order: split, generate, replay-activations, evaluate, features, report; `run`
    chains them and resumes where a previous run stopped. File schemas: data/README.md.
    """


if __name__ == "__main__":
    cli()
