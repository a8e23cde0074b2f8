"""Completeness keys: what a finished stage read, wrote and ran, so `run` can skip it cheaply.

A stamp is written by `run` after a stage's process exited 0, and holds the stage's command
line, the ``PVA_*`` environment, a fingerprint of every input and output path (size and
modification time of each file below it: every writer here renames a finished file into
place, so a rewrite changes both), and the sha256 of the source of the packages the stage
runs. The stage is skipped only while all of it is unchanged; anything else starts the
stage's process, whose own resume rules then decide what is left to do.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from artifacts.errors import InputError
from artifacts.files import read_optional_json, write_json


def fingerprint(path: Path) -> list[list[Any]] | None:
    """``[[relative name, size, mtime_ns], ...]`` of a file or of every file below a folder."""
    path = Path(path)
    if path.is_file():
        st = path.stat()
        return [[path.name, st.st_size, st.st_mtime_ns]]
    if not path.is_dir():
        return None
    rows = []
    for item in sorted(path.rglob("*")):
        if item.is_file() and not item.name.startswith("."):
            st = item.stat()
            rows.append([str(item.relative_to(path)), st.st_size, st.st_mtime_ns])
    return rows


def code_hash(packages: Iterable[str], root: Path) -> str:
    """sha256 over the ``.py`` files of ``packages`` below ``root`` (names and contents)."""
    h = hashlib.sha256()
    for package in sorted(packages):
        for source in sorted((root / package).rglob("*.py")):
            h.update(str(source.relative_to(root)).encode())
            h.update(source.read_bytes())
    return h.hexdigest()


@dataclass(frozen=True)
class Stamp:
    """The completeness key of one stage (see the module docstring)."""

    argv: list[str]
    environment: dict[str, str]
    inputs: dict[str, Any]
    outputs: dict[str, Any]
    code: str

    @classmethod
    def of(
        cls,
        argv: Sequence[str],
        *,
        inputs: Iterable[Path],
        outputs: Iterable[Path],
        environment: Mapping[str, str],
        code: Iterable[str],
        root: Path,
    ) -> "Stamp":
        return cls(
            argv=list(argv),
            environment=dict(environment),
            inputs={str(p): fingerprint(p) for p in inputs},
            outputs={str(p): fingerprint(p) for p in outputs},
            code=code_hash(code, root),
        )


def read_stamp(path: Path) -> Stamp | None:
    """The stamp stored at ``path``, or None (missing or from another version of this file)."""
    try:
        data = read_optional_json(path)
    except InputError:  # a torn or foreign file: the stage simply runs again
        return None
    try:
        return Stamp(**data) if data is not None else None
    except TypeError:
        return None


def write_stamp(path: Path, stamp: Stamp) -> None:
    write_json(path, asdict(stamp))
