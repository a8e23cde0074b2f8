"""Atomic file writes (a crash never leaves a half-written output behind) and JSON readers.

Every writer goes through :func:`atomic_path`: a temporary file in the destination's folder,
renamed over the destination only when the block finishes (``os.replace`` is atomic on POSIX
within one file system).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from artifacts.errors import InputError


def _current_umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


# mkstemp creates files readable by their owner only; outputs get the usual mode instead.
_FILE_MODE = 0o666 & ~_current_umask()


@contextlib.contextmanager
def atomic_path(dest: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a temporary path beside ``dest`` (parent created); rename it to ``dest`` on success, remove it on error."""
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{dest.name}.", suffix=".tmp", dir=dest.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        os.chmod(tmp_path, _FILE_MODE)
        os.replace(tmp_path, dest)
    finally:
        tmp_path.unlink(missing_ok=True)


def write_json(dest: str | os.PathLike[str], obj: Any) -> None:
    """Write ``obj`` as indented JSON, atomically (numpy values and paths as plain JSON)."""
    with atomic_path(dest) as tmp:
        tmp.write_text(json.dumps(obj, indent=2, default=_json_default) + "\n")


def write_parquet(dest: str | os.PathLike[str], df: pd.DataFrame) -> None:
    """Write a DataFrame to parquet (pyarrow, no index), atomically."""
    with atomic_path(dest) as tmp:
        df.to_parquet(tmp, index=False, engine="pyarrow")


def write_npz(dest: str | os.PathLike[str], **arrays: Any) -> None:
    """Write arrays to an uncompressed ``.npz``, atomically."""
    with atomic_path(dest) as tmp, open(tmp, "wb") as fh:
        np.savez(fh, **arrays)


def sha256_file(path: str | os.PathLike[str]) -> str:
    """Hex sha256 of a file's bytes."""
    with open(path, "rb") as fh:
        return hashlib.file_digest(fh, "sha256").hexdigest()


def read_json(path: str | os.PathLike[str]) -> Any:
    """Read a JSON file (a missing file raises ``FileNotFoundError``)."""
    return json.loads(Path(path).read_text())


def read_optional_json(path: str | os.PathLike[str]) -> dict[str, Any] | None:
    """A JSON object, or None when the file does not exist; :class:`InputError` when it is not a JSON object."""
    path = Path(path)
    if not path.is_file():
        return None
    try:
        data = json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise InputError(f"{path}: not valid JSON ({exc}); delete it or rerun the stage that writes it") from exc
    if not isinstance(data, dict):
        raise InputError(f"{path}: expected a JSON object")
    return data


def _json_default(obj: Any) -> Any:
    # numpy scalars and arrays show up in metadata built from DataFrames.
    if isinstance(obj, (np.generic, np.ndarray)):
        return obj.tolist()
    if isinstance(obj, Path):
        return str(obj)
    raise TypeError(f"not JSON serializable: {type(obj).__name__}")
