"""Stage settings declared once: a frozen dataclass whose fields carry default and help.

Each stage has one ``Config`` (``gen/config.py``, ...) built from :func:`setting` fields; its
click command and the ``run`` options are derived from them (:mod:`pipeline.options`), and a
notebook builds the same object, so a default or a help text is written in exactly one place.

A field is part of the output's identity unless declared ``identity=False`` (how often to
commit, how many workers, whether to overwrite): the completion record compares only identity
settings, so a resumed run may change the others. A ``selects=True`` field (``--limit``,
``--start``) says which tasks the stage covers: a change makes the stage run again, and a
resuming stage keeps the rows it already has.
"""

from __future__ import annotations

import dataclasses
import enum
import types
import typing
from collections.abc import Callable, Mapping
from dataclasses import MISSING, dataclass, field, fields
from pathlib import Path
from typing import Any, ClassVar

from artifacts.errors import InputError
from artifacts.layout import DATA_DIR_ENV, Layout, default_data_dir

METADATA_KEY = "pva"


@dataclass(frozen=True)
class Setting:
    """How one config field appears on the command line (everything but its type and default)."""

    help: str
    flag: str | None = None  # e.g. "--problems" for field problems_path; default from the field name
    choices: tuple[str, ...] | None = None
    minimum: float | None = None
    min_open: bool = False  # minimum excluded
    metavar: str | None = None
    negatable: bool = False  # --x/--no-x for a bool whose default is None (auto)
    hidden: bool = False
    default_text: str | None = None  # shown instead of the default (computed defaults)
    identity: bool = True  # part of the output's identity (see the module docstring)
    selects: bool = False  # which tasks the stage covers, not how each is made: a change resumes
    envvar: str | None = None


def setting(default: Any = MISSING, *, help: str, default_factory: Callable[[], Any] | None = None, **cli: Any) -> Any:
    """A dataclass field with its command-line description (see :class:`Setting`)."""
    meta = {METADATA_KEY: Setting(help=help, **cli)}
    if default_factory is not None:
        return field(default_factory=default_factory, metadata=meta)
    return field(default=default, metadata=meta)


def describe(f: dataclasses.Field) -> Setting:
    """The :class:`Setting` of a config field."""
    return f.metadata[METADATA_KEY]


@dataclass(frozen=True)
class StageConfig:
    """Base of every stage's settings: ``STAGE`` (the command name), paths, and the settings as plain data."""

    STAGE: ClassVar[str] = ""

    data_dir: Path = setting(
        default_factory=default_data_dir, help="Root folder of default inputs and outputs (see data/README.md).",
        default_text=f"${DATA_DIR_ENV} or ./data", identity=False)
    overwrite: bool = setting(False, help="Discard this stage's earlier outputs first instead of resuming or reusing them.",
                              identity=False)

    def __post_init__(self) -> None:
        """Paths given as strings become paths; each field's ``minimum`` and ``choices`` are checked."""
        for f in fields(self):
            value = getattr(self, f.name)
            if isinstance(value, str) and field_type(type(self), f.name) is Path:
                object.__setattr__(self, f.name, Path(value))  # frozen: set once, while constructing
        check_ranges_and_choices(self)
        chained = getattr(super(), "__post_init__", None)  # a settings mixin's own checks
        if chained is not None:
            chained()

    @property
    def layout(self) -> Layout:
        """Default paths below ``data_dir``."""
        return Layout(self.data_dir)

    def inputs(self) -> list[Path]:
        """Files and folders the stage reads (fingerprinted in its completion record)."""
        raise NotImplementedError

    def outputs(self) -> list[Path]:
        """Files and folders the stage writes (removed by ``--overwrite``, fingerprinted when done)."""
        raise NotImplementedError

    def record_dir(self) -> Path:
        """The folder holding the stage's completion record."""
        raise NotImplementedError

    def settings(self, *, identity_only: bool = False) -> dict[str, Any]:
        """The settings as JSON-ready values, every default included."""
        return {f.name: plain(getattr(self, f.name)) for f in fields(self) if not identity_only or describe(f).identity}

    def selecting(self) -> frozenset[str]:
        """Names of the settings that only select tasks (``selects=True``)."""
        return frozenset(f.name for f in fields(self) if describe(f).selects)

    @classmethod
    def from_mapping(cls, values: Mapping[str, Any]) -> "StageConfig":
        """A config from plain ``{field: value}`` data (unknown keys refused, missing ones default)."""
        unknown = set(values) - {f.name for f in fields(cls)}
        if unknown:
            raise TypeError(f"{cls.__name__}: unknown settings {sorted(unknown)}")
        return cls(**{k: coerce(field_type(cls, k), v) for k, v in values.items()})


def plain(value: Any) -> Any:
    """A JSON-ready copy: paths and enums as strings, tuples as lists."""
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, (tuple, list)):
        return [plain(v) for v in value]
    if isinstance(value, Mapping):
        return {str(k): plain(v) for k, v in value.items()}
    return value


def coerce(kind: Any, value: Any) -> Any:
    """``value`` (plain data) as the type ``kind`` (a field type without ``| None``) names."""
    if value is None:
        return None
    if kind is Path:
        return Path(value)
    if typing.get_origin(kind) is tuple:
        return tuple(value)
    return value


def field_type(cls: type, name: str) -> Any:
    """The type of field ``name`` without ``| None``."""
    hint = typing.get_type_hints(cls)[name]
    args = [a for a in typing.get_args(hint) if a is not type(None)]
    if typing.get_origin(hint) in (typing.Union, types.UnionType) and len(args) == 1:
        return args[0]
    return hint


def check_ranges_and_choices(config: Any) -> None:
    """One-line :class:`InputError` for a value outside its field's ``choices`` or ``minimum``."""
    for f in fields(config):
        meta, value = describe(f), getattr(config, f.name)
        flag = meta.flag or "--" + f.name.replace("_", "-")
        if value is None or isinstance(value, bool):
            continue
        if meta.choices and value not in meta.choices:
            raise InputError(f"{flag} {value}: choose one of {', '.join(meta.choices)}")
        if meta.minimum is not None and (value <= meta.minimum if meta.min_open else value < meta.minimum):
            bound = "must be positive" if meta.min_open and meta.minimum == 0 else f"must be at least {meta.minimum:g}"
            raise InputError(f"{flag} {value}: {bound}")
