"""The completion record: the one way to know a stage is done.

:func:`stage_run` writes ``{record_dir}/.records/{stage}.json`` when a stage starts
(``complete: false``) and when it finishes (``complete: true``). The record holds the identity
settings (defaults resolved), a fingerprint (name, size, mtime) of every input and output, and
the code version: sha256 of every project package the stage's package reaches through its
imports, so no file it runs is missed and no other stage's code counts. ``run`` skips a stage
whose record matches what it would run now (:func:`is_current`).
"""

from __future__ import annotations

import ast
import fcntl
import functools
import hashlib
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from artifacts.errors import InputError
from artifacts.files import read_optional_json, write_json
from artifacts.settings import StageConfig

PROJECT_ROOT = Path(__file__).resolve().parents[1]
RECORDS_SUBDIR = ".records"  # inside a stage's record_dir; dot-names are never fingerprinted
COMPLETE = "complete"
SETTINGS = "settings"
INPUTS = "inputs"
OUTPUTS = "outputs"
CODE = "code"


def record_path(config: StageConfig) -> Path:
    """``{record_dir}/.records/{stage}.json``."""
    return config.record_dir() / RECORDS_SUBDIR / f"{config.STAGE}.json"


def read_record(config: StageConfig) -> dict[str, Any] | None:
    """The stored record, or None when missing or unreadable (the stage then simply runs)."""
    try:
        return read_optional_json(record_path(config))
    except InputError:
        return None


def fingerprint(path: Path) -> list[list[Any]] | None:
    """``[[relative name, size, mtime_ns], ...]`` of a file or of every file below a folder.

    Writers rename finished files into place, so a rewrite changes size or mtime. Dot-names
    (records, locks, temporaries) are left out.
    """
    path = Path(path)
    if path.is_file():
        items = [(path, path.name)]
    elif path.is_dir():
        items = [(item, item.relative_to(path)) for item in sorted(path.rglob("*"))]
        items = [(item, str(rel)) for item, rel in items
                 if item.is_file() and not any(part.startswith(".") for part in rel.parts)]
    else:
        return None
    return [[name, item.stat().st_size, item.stat().st_mtime_ns] for item, name in items]


def fingerprints(config: StageConfig, paths: list[Path]) -> dict[str, Any]:
    """``{name: fingerprint}``, names relative to the data folder when inside it (a copied folder matches)."""
    base = Path(getattr(config, "data_dir", ".")).resolve()
    resolved = [Path(path).resolve() for path in paths]
    return {str(r.relative_to(base) if r.is_relative_to(base) else r): fingerprint(r) for r in resolved}


@functools.cache
def code_version(package: str, root: Path = PROJECT_ROOT) -> str:
    """sha256 of every ``.py`` file of ``package`` and of each project package it reaches by importing."""
    root = Path(root).resolve()
    project = {p.parent.name for p in root.glob("*/__init__.py")}
    reached, todo = set(), [package]
    while todo:
        name = todo.pop()
        if name in reached:
            continue
        reached.add(name)
        for source in (root / name).rglob("*.py"):
            todo += sorted(_imported_top_levels(source) & project - reached)
    digest = hashlib.sha256()
    for name in sorted(reached):
        for source in sorted((root / name).rglob("*.py")):
            digest.update(str(source.relative_to(root)).encode())
            digest.update(source.read_bytes())
    return digest.hexdigest()


def _imported_top_levels(source: Path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(source.read_bytes(), filename=str(source))):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module.split(".")[0])
    return names


def expected_record(config: StageConfig) -> dict[str, Any]:
    """What a finished record of ``config`` holds now, outputs aside."""
    return {
        "stage": config.STAGE,
        SETTINGS: config.settings(identity_only=True),
        INPUTS: fingerprints(config, config.inputs()),
        CODE: code_version(type(config).__module__.split(".")[0]),
    }


def is_current(config: StageConfig) -> bool:
    """True when the stage finished with these settings, inputs and code, and its outputs are untouched."""
    record = read_record(config)
    if not record or not record.get(COMPLETE):
        return False
    return (all(record.get(key) == value for key, value in expected_record(config).items())
            and record.get(OUTPUTS) == fingerprints(config, config.outputs()))


@contextmanager
def stage_run(config: StageConfig, *, overwrite: bool = False, resumes: bool = False) -> Iterator[dict[str, Any]]:
    """Run a stage under its completion record, one run per folder at a time (a lock).

    Args:
        config: the stage's settings.
        overwrite: discard earlier outputs first.
        resumes: the stage keeps per-task work across runs; then earlier output made with
            other identity settings, or with no record at all, is refused unless ``overwrite``.

    Yields:
        The earlier record (``{}`` when none or discarded), e.g. for cumulative timings.
    """
    path = record_path(config)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path.with_suffix(".lock"), "w") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise InputError(f"{config.record_dir()}: another {config.STAGE} run is writing here; wait for it") from None
        previous = read_record(config) or {}
        if overwrite:
            for output in config.outputs():
                if output.is_dir():
                    shutil.rmtree(output)
                else:
                    output.unlink(missing_ok=True)
            previous = {}
        elif resumes:
            _check_resumable(config, previous)
        record = {**expected_record(config), COMPLETE: False, "all_settings": config.settings(),
                  "started": _now(), OUTPUTS: None}
        write_json(path, record)
        yield previous
        write_json(path, {**record, COMPLETE: True, "finished": _now(), OUTPUTS: fingerprints(config, config.outputs())})


def _check_resumable(config: StageConfig, previous: dict[str, Any]) -> None:
    existing = [p for p in config.outputs() if p.exists() and (p.is_file() or any(p.iterdir()))]
    if not existing:
        return
    if not previous:
        raise InputError(
            f"{existing[0]}: earlier {config.STAGE} output without a completion record (an older version or "
            "another tool made it); pass --overwrite to redo it"
        )
    # Settings that only select tasks may change: the rows already made stay valid.
    old, new = previous.get(SETTINGS) or {}, config.settings(identity_only=True)
    diff = [f"{k}: {old.get(k)!r} -> {new.get(k)!r}" for k in sorted((set(old) | set(new)) - config.selecting())
            if old.get(k) != new.get(k)]
    if diff:
        raise InputError(
            f"{config.record_dir()}: earlier {config.STAGE} output was made with other settings "
            f"({'; '.join(diff)}); pass --overwrite to redo it, or rerun with the same settings"
        )


def _now() -> str:
    return datetime.now(timezone.utc).isoformat()
