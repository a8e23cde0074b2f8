"""Options and error handling shared by several commands."""

from __future__ import annotations

import functools
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from artifacts.errors import InputError
from artifacts.layout import DATA_DIR_ENV, Layout, default_data_dir


class CLIError(click.ClickException):
    """A one-line error on stderr and exit code 2 (bad input), no traceback."""

    exit_code = 2


def translate_errors(func: Callable[..., Any]) -> Callable[..., Any]:
    """Turn the library's :class:`InputError` into :class:`CLIError`."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except InputError as exc:
            raise CLIError(str(exc)) from None

    return wrapper


def data_dir_option(func: Callable[..., Any]) -> Callable[..., Any]:
    """``--data-dir``: root of every default input and output path."""
    return click.option(
        "--data-dir",
        type=click.Path(file_okay=False, path_type=Path),
        default=default_data_dir,
        show_default=f"${DATA_DIR_ENV} or ./data",
        help="Root folder of default inputs and outputs (see data/README.md).",
    )(func)


def layers_options(func: Callable[..., Any]) -> Callable[..., Any]:
    """``--phase2-10-dir``, ``--phase2-5-dir`` and ``--layers``: the best-layer discovery."""
    func = click.option(
        "--layers",
        default=None,
        metavar="L1,L2",
        help="Layers to extract, overriding the SAE analysis (0-indexed, e.g. 16,19).",
    )(func)
    return analysis_dirs_options(func)


def analysis_dirs_options(func: Callable[..., Any]) -> Callable[..., Any]:
    """``--phase2-10-dir`` and ``--phase2-5-dir``: where the SAE analysis' feature lists are."""
    func = click.option(
        "--phase2-5-dir",
        type=click.Path(file_okay=False, path_type=Path),
        default=None,
        help="Folder with Phase 2.5 top_20_features.json, used when Phase 2.10 has none "
        "[default: $PVA_PHASE2_5_DIR or DATA_DIR/phase2_5].",
    )(func)
    func = click.option(
        "--phase2-10-dir",
        type=click.Path(file_okay=False, path_type=Path),
        default=None,
        help="Folder with Phase 2.10 top_20_features.json "
        "[default: $PVA_PHASE2_10_DIR or DATA_DIR/phase2_10].",
    )(func)
    return func


def layer_folders(layout: Layout, phase2_10_dir: Path | None, phase2_5_dir: Path | None) -> list[Path]:
    """The folders searched for the SAE analysis, in priority order."""
    return [phase2_10_dir or layout.phase2_10, phase2_5_dir or layout.phase2_5]
