"""Read a table whose format the file name says: the one suffix-sniffing reader.

Used for MBPP (``problems/sources.py``) and for the generations a user brings to
``evaluate`` (``evaluate/score.py``).

| suffix     | read as                                                                    |
| ---------- | -------------------------------------------------------------------------- |
| `.parquet` | parquet (pyarrow)                                                          |
| `.jsonl`   | one JSON object per non-blank line                                         |
| `.json`    | a JSON array of objects                                                    |
| `.csv`     | CSV, column types inferred, no NA guessing (an empty text cell is "")      |
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import pandas as pd

from artifacts.errors import InputError

TABLE_SUFFIXES = (".parquet", ".jsonl", ".json", ".csv")


def read_table(path: str | Path, *, what: str = "table", suffixes: Sequence[str] = TABLE_SUFFIXES) -> pd.DataFrame:
    """The table at ``path``, read by its suffix.

    Args:
        path: the file.
        what: what the file holds, for messages ("MBPP file", "generations file").
        suffixes: the formats accepted here (a subset of :data:`TABLE_SUFFIXES`).

    Raises:
        InputError: missing file, unknown or unaccepted suffix, or unreadable content.
    """
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: {what} not found")
    suffix = path.suffix.lower()
    if suffix not in suffixes:
        raise InputError(f"{path}: unknown {what} format {suffix!r} (use {', '.join(suffixes)})")
    try:
        if suffix == ".parquet":
            return pd.read_parquet(path)
        if suffix == ".jsonl":
            return pd.DataFrame([json.loads(line) for line in path.read_text().splitlines() if line.strip()])
        if suffix == ".json":
            data = json.loads(path.read_text())
            if not isinstance(data, list):
                raise InputError(f"{path}: expected a JSON array of rows")
            return pd.DataFrame(data)
        return pd.read_csv(path, keep_default_na=False)
    except InputError:
        raise
    except (json.JSONDecodeError, UnicodeDecodeError, OSError, ValueError) as exc:
        raise InputError(f"{path}: cannot read the {what} ({exc.__class__.__name__}: {exc})") from exc
    except Exception as exc:  # pyarrow raises several types for a damaged parquet file
        raise InputError(f"{path}: cannot read the {what} ({exc.__class__.__name__}: {exc})") from exc
