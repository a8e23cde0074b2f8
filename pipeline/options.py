"""`run`'s options, derived from the stage commands' own click parameters.

Each option is declared once, on its stage command; `run` copies it, so a new stage option
reaches `run` with no other edit. Naming, in order:

1. options every stage that has them means the same (:data:`SHARED`): one `run` option,
   passed to each of those stages;
2. options `run` wires itself (input and output paths, :data:`WIRED`): not exposed;
3. explicit names (:data:`RENAMED`);
4. a name two stages use for different things (``--seed`` of split and generate): prefixed
   with the stage, ``--split-seed`` and ``--generate-seed``;
5. anything else: the stage's own name.

The value a stage receives is rebuilt as command-line words and parsed again by the stage's
own parser in its child process, so `run` passes exactly what the stage would accept.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import click

# Same meaning in every stage that declares them.
SHARED = frozenset({"data_dir", "layers", "phase2_10_dir", "phase2_5_dir", "dtype"})
# Paths `run` derives from --data-dir so that the stages read each other's outputs.
WIRED = frozenset({"output_dir", "problems_path", "generations_path", "dataset_path", "activations_dir"})
# (stage, parameter) -> run option name, where the stage's own name would be unclear in `run`.
RENAMED = {("replay-activations", "batch_size"): "replay_batch_size", ("generate", "model"): "model"}
# The prefix of a stage's options that collide with another stage's.
PREFIX = {"replay-activations": "replay"}


@dataclass(frozen=True)
class RunOption:
    """One `run` option and the stage options it feeds."""

    name: str  # python name in `run`
    targets: tuple[tuple[str, click.Option], ...]  # (stage, the stage's own option)

    @property
    def flag(self) -> str:
        return "--" + self.name.replace("_", "-")


def _stage_options(command: click.Command) -> list[click.Option]:
    return [p for p in command.params if isinstance(p, click.Option) and p.name not in WIRED]


def derive_options(stages: Sequence[tuple[str, click.Command]]) -> dict[str, RunOption]:
    """Every `run` option, keyed by python name (see the module docstring for the naming)."""
    counts = Counter(opt.name for _, cmd in stages for opt in _stage_options(cmd))
    targets: dict[str, list[tuple[str, click.Option]]] = {}
    for stage, command in stages:
        for opt in _stage_options(command):
            assert opt.name is not None
            flag = opt.opts[0].removeprefix("--").replace("-", "_")
            if (stage, opt.name) in RENAMED:
                name = RENAMED[(stage, opt.name)]
            elif opt.name in SHARED or counts[opt.name] == 1:
                name = flag
            else:
                name = f"{PREFIX.get(stage, stage).replace('-', '_')}_{flag}"
            targets.setdefault(name, []).append((stage, opt))
    return {name: RunOption(name, tuple(t)) for name, t in targets.items()}


def _default_text(opt: click.Option) -> str:
    default = opt.default
    if opt.is_flag or callable(default) or not isinstance(default, (str, int, float, Path)):
        return ""  # flags are off unless given; computed defaults are described in the help
    return f" [default: {default}]"


def click_option(run_option: RunOption) -> click.Option:
    """The `run` twin of a stage option: same type and help, no default (the stage's applies)."""
    stage, opt = run_option.targets[0]
    stages = ", ".join(s for s, _ in run_option.targets)
    help_text = f"[{stages}] {opt.help or ''}{_default_text(opt)}"
    decls = [run_option.flag]
    if opt.is_flag and opt.secondary_opts:
        decls = [f"{run_option.flag}/--no-{run_option.flag[2:]}"]
    kwargs: dict[str, Any] = {"help": help_text, "envvar": opt.envvar, "metavar": opt.metavar, "show_default": False,
                              "hidden": opt.hidden}
    if opt.is_flag:
        return click.Option([*decls, run_option.name], is_flag=True, default=None, **kwargs)
    return click.Option([*decls, run_option.name], type=opt.type, multiple=opt.multiple, default=None, **kwargs)


def to_argv(opt: click.Option, value: Any) -> list[str]:
    """The command-line words that make the stage's parser read ``value`` for ``opt``."""
    if opt.is_flag:
        if opt.secondary_opts:
            return [opt.opts[0] if value else opt.secondary_opts[0]]
        return [opt.opts[0]] if value else []
    if opt.multiple:
        return [word for item in value for word in (opt.opts[0], _word(item))]
    return [opt.opts[0], _word(value)]


def _word(value: Any) -> str:
    return str(value) if not isinstance(value, Path) else str(value)


def stage_argv(stage: str, options: Mapping[str, RunOption], values: Mapping[str, Any]) -> list[str]:
    """The words for ``stage`` from the `run` values that were given (``None``: not given)."""
    argv: list[str] = []
    for name, value in values.items():
        if value is None or name not in options:
            continue
        for target_stage, opt in options[name].targets:
            if target_stage == stage:
                argv += to_argv(opt, value)
    return argv


def given(ctx: click.Context, names: Iterable[str]) -> dict[str, Any]:
    """The `run` values the user set (command line or environment), by python name."""
    sources = (click.core.ParameterSource.COMMANDLINE, click.core.ParameterSource.ENVIRONMENT)
    return {n: ctx.params[n] for n in names if ctx.get_parameter_source(n) in sources and ctx.params[n] is not None}
