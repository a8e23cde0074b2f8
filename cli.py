"""pva-baseline command line: ``python cli.py COMMAND --help`` explains each stage.

Stages, each reading the previous stage's files (schemas in data/README.md):
split -> generate -> replay-activations -> evaluate -> report; ``run`` chains them.
"""

from __future__ import annotations

import importlib

import click

# Command name -> "module:attribute". Commands are imported only when used, so that
# `evaluate` or `split` does not pay for importing torch, vLLM or matplotlib.
COMMANDS = {
    "split": "commands.split:split",
    "prepare-demo-model": "commands.prepare_demo_model:prepare_demo_model",
    "generate": "commands.generate:generate",
    "replay-activations": "commands.replay:replay",
    "evaluate": "commands.evaluate:evaluate",
    "features": "commands.features:features",
    "report": "commands.report:report",
    "run": "commands.run:run",
}


class LazyGroup(click.Group):
    """A click group that imports a command's module on first use."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return list(COMMANDS)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        target = COMMANDS.get(cmd_name)
        if target is None:
            return None
        module, attr = target.split(":")
        return getattr(importlib.import_module(module), attr)


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
def cli() -> None:
    """Build the instruction-tuned PVA baseline dataset on the MBPP validation split.

    Stages in order: split, generate, replay-activations, evaluate, report; `run` chains
    them and resumes where a previous run stopped. File schemas: data/README.md.
    """


if __name__ == "__main__":
    cli()
