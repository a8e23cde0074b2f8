"""``python cli.py run``: every stage in order, resumable, one set of settings.

`run`'s options are the stage commands' own (see :mod:`pipeline.options`), so every stage
option reaches `run` without being declared twice.
"""

from __future__ import annotations

import importlib

import click

from artifacts.layout import Layout
from commands.options import CLIError, data_dir_option, translate_errors
from pipeline.options import click_option, derive_options, given
from pipeline.run import DEMO_PRESET, StageFailed, apply_preset, build_stages, check_sandbox, run_pipeline

# The stages whose options `run` takes, in pipeline order ("module:attribute" of the command).
STAGE_COMMANDS = (
    ("split", "commands.split:split"),
    ("generate", "commands.generate:generate"),
    ("replay-activations", "commands.replay:replay"),
    ("evaluate", "commands.evaluate:evaluate"),
    ("features", "commands.features:features"),
    ("report", "commands.report:report"),
)
STAMPS_SUBDIR = ".run"


def stage_commands() -> list[tuple[str, click.Command]]:
    """``(stage name, click command)`` of every stage, in order."""
    loaded = []
    for stage, target in STAGE_COMMANDS:
        module, attr = target.split(":")
        loaded.append((stage, getattr(importlib.import_module(module), attr)))
    return loaded


RUN_OPTIONS = derive_options(stage_commands())


def _run(preset: str | None, **_: object) -> None:
    """Run split (when missing), generate, replay-activations, evaluate, features and report.

    Each stage runs in its own process and resumes where an earlier run stopped, so a
    rerun after a crash (or after success) only does what is missing; a stage whose inputs,
    settings and code are unchanged since it finished is skipped without starting a process.
    Every stage option is accepted here (the stage it feeds is named in brackets).
    """
    ctx = click.get_current_context()
    data_dir = ctx.params["data_dir"]
    values, prepare = apply_preset(given(ctx, RUN_OPTIONS), preset, data_dir=data_dir)
    check_sandbox(values)
    stages = build_stages(data_dir, values, RUN_OPTIONS, prepare_demo_model=prepare)
    try:
        timings = run_pipeline(stages, stamps_dir=Layout(data_dir).root / STAMPS_SUBDIR, echo=click.echo)
    except StageFailed as exc:
        raise CLIError(str(exc)) from None
    total = sum(t.seconds for t in timings)
    parts = ", ".join(f"{t.name} {t.seconds:.1f}s" if t.ran else f"{t.name} skipped" for t in timings)
    click.echo(f"pipeline finished in {total:.1f}s ({parts})")


def _build_command() -> click.Command:
    func = translate_errors(_run)
    params = [click_option(option) for name, option in RUN_OPTIONS.items() if name != "data_dir"]
    command = click.command("run", help=_run.__doc__)(func)
    command.params = [
        click.Option(["--preset"], type=click.Choice([DEMO_PRESET]), default=None,
                     help="demo: the SmolLM2-135M-Instruct demo model (prepared when missing), the first 20 "
                     "problems, 512 new tokens, --verify 4, --enforce-eager, stand-in SAEs (--demo-saes); explicit options "
                     "still win."),
        *params,
    ]
    return data_dir_option(command)


run = _build_command()
