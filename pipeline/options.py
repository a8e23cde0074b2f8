"""Command-line options derived from the stage configs (each setting declared once, on its field).

A stage command's options are its config's fields (:func:`click_params`). ``run``'s options
are every stage's fields (:func:`derive_run_options`), named in this order of rules:

1. fields every stage that has them means the same (:data:`SHARED`): one ``run`` option;
2. paths ``run`` derives from ``--data-dir`` so the stages read each other's outputs
   (:data:`WIRED`): not exposed;
3. explicit names (:data:`RENAMED`);
4. a name two stages use for different things (``--seed`` of split and generate): prefixed
   with the stage, ``--split-seed`` and ``--generate-seed``;
5. anything else: the stage's own flag.

Only values the user gave are passed on, so each config's own defaults apply.
"""

from __future__ import annotations

import typing
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import MISSING, dataclass, fields
from pathlib import Path
from typing import Any

import click

from artifacts.settings import StageConfig, describe, field_type

SHARED = frozenset({"data_dir", "layers", "phase2_10_dir", "phase2_5_dir", "dtype", "model_type"})
WIRED = frozenset({"output_dir", "problems_path", "generations_path", "dataset_path", "activations_dir"})
RENAMED = {("replay-activations", "batch_size"): "replay_batch_size", ("generate", "model"): "model"}
PREFIX = {"replay-activations": "replay"}
GIVEN = (click.core.ParameterSource.COMMANDLINE, click.core.ParameterSource.ENVIRONMENT)


def flag_of(cls: type[StageConfig], name: str) -> str:
    """The stage command's flag of field ``name`` (``--max-new-tokens``)."""
    return describe(_field(cls, name)).flag or "--" + name.replace("_", "-")


def _field(cls: type[StageConfig], name: str) -> Any:
    return next(f for f in fields(cls) if f.name == name)


def click_option(cls: type[StageConfig], name: str, *, flag: str | None = None, param: str | None = None,
                 help_prefix: str = "") -> click.Option:
    """The click option of one config field; its default stays the config's (None: not given)."""
    f = _field(cls, name)
    meta, kind, flag, param = describe(f), field_type(cls, name), flag or flag_of(cls, name), param or name
    default = meta.default_text
    if default is None and f.default is not MISSING and f.default not in (None, False, ()):
        default = str(getattr(f.default, "value", f.default))
    kwargs: dict[str, Any] = {"help": help_prefix + meta.help + (f"  [default: {default}]" if default else ""),
                              "hidden": meta.hidden, "envvar": meta.envvar, "show_default": False,
                              "metavar": meta.metavar, "default": None}
    if kind is bool:
        decls = [f"{flag}/--no-{flag[2:]}"] if meta.negatable else [flag]
        return click.Option([*decls, param], is_flag=True, **kwargs)
    if meta.choices:
        click_type: Any = click.Choice(meta.choices)
    elif kind is Path:
        click_type = click.Path(path_type=Path)
    elif kind in (int, float) and meta.minimum is not None:
        click_type = (click.IntRange if kind is int else click.FloatRange)(min=meta.minimum, min_open=meta.min_open)
    else:
        click_type = kind if kind in (int, float, str) else str  # tuple[str, ...] and the like: each item a word
    return click.Option([flag, param], type=click_type, multiple=typing.get_origin(kind) is tuple, **kwargs)


def click_params(cls: type[StageConfig]) -> list[click.Option]:
    """Every option of a stage command, in field order."""
    return [click_option(cls, f.name) for f in fields(cls)]


def given(ctx: click.Context, names: Sequence[str]) -> dict[str, Any]:
    """The values the user set (command line or environment), by python name."""
    return {n: ctx.params[n] for n in names if ctx.get_parameter_source(n) in GIVEN and ctx.params[n] is not None}


@dataclass(frozen=True)
class RunOption:
    """One ``run`` option and the stage fields it feeds."""

    name: str
    targets: tuple[tuple[str, str], ...]  # (stage, field)


def derive_run_options(configs: Sequence[tuple[str, type[StageConfig]]]) -> dict[str, RunOption]:
    """Every ``run`` option, keyed by python name (module docstring for the naming)."""
    exposed = [(stage, cls, f.name) for stage, cls in configs for f in fields(cls) if f.name not in WIRED]
    counts = Counter(name for _, _, name in exposed)
    targets: dict[str, list[tuple[str, str]]] = {}
    for stage, cls, name in exposed:
        own = flag_of(cls, name).removeprefix("--").replace("-", "_")
        if (stage, name) in RENAMED:
            run_name = RENAMED[(stage, name)]
        elif name in SHARED or counts[name] == 1:
            run_name = own
        else:
            run_name = f"{PREFIX.get(stage, stage).replace('-', '_')}_{own}"
        targets.setdefault(run_name, []).append((stage, name))
    return {n: RunOption(n, tuple(t)) for n, t in targets.items()}


def run_click_option(option: RunOption, configs: Mapping[str, type[StageConfig]]) -> click.Option:
    """The ``run`` twin of a stage field: same type and help, prefixed with the stages it feeds."""
    stage, name = option.targets[0]
    stages = ", ".join(s for s, _ in option.targets)
    return click_option(configs[stage], name, flag="--" + option.name.replace("_", "-"), param=option.name,
                        help_prefix=f"[{stages}] ")


def stage_values(stage: str, options: Mapping[str, RunOption], values: Mapping[str, Any]) -> dict[str, Any]:
    """``{field: value}`` for ``stage`` from the ``run`` values that were given."""
    return {name: value for run_name, value in values.items() if run_name in options
            for target, name in options[run_name].targets if target == stage}
