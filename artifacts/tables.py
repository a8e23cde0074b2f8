"""Read tables: any table by its suffix, and the evaluated dataset.

:func:`read_table` is the one suffix-sniffing reader, used for MBPP (``problems/sources.py``)
and for the generations a user brings to ``evaluate`` (``evaluate/score.py``):

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

import numpy as np
import pandas as pd

from artifacts.errors import InputError
from artifacts.schema import dataset as keys

TABLE_SUFFIXES = (".parquet", ".jsonl", ".json", ".csv")
# The evaluated dataset (read by features and report, and by report for a base-model dataset).
DATASET_REQUIRED = (keys.TASK_ID, keys.TEST_PASSED)
# Verdict columns read as booleans when present (older datasets and other tools lack them).
VERDICT_PASS_COLUMNS = tuple(keys.VERDICT_COLUMNS.values())


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
        if suffix == ".csv":
            return pd.read_csv(path, keep_default_na=False)
        text = path.read_text()
        if suffix == ".jsonl":
            data = [json.loads(line) for line in text.splitlines() if line.strip()]
        else:
            data = json.loads(text)
        if isinstance(data, list):
            return pd.DataFrame(data)
    except Exception as exc:  # json, unicode, OS and pyarrow errors alike
        raise InputError(f"{path}: cannot read the {what} ({exc.__class__.__name__}: {exc})") from exc
    raise InputError(f"{path}: expected a JSON array of rows")


def read_dataset(path: str | Path, *, required: Sequence[str] = DATASET_REQUIRED) -> pd.DataFrame:
    """Read an evaluated dataset parquet: one row per task, sorted by ``task_id``.

    ``test_passed`` and the verdict columns present are read as bool, ``task_id`` as int64,
    ``cyclomatic_complexity`` (when present) as nullable Int64; one-line :class:`InputError` otherwise.
    """
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: dataset not found; run `python cli.py evaluate` first or pass --dataset")
    try:
        df = pd.read_parquet(path)
    except Exception as exc:  # pyarrow raises several types for a damaged file
        raise InputError(f"{path}: not a readable parquet file ({exc})") from exc
    missing = [c for c in required if c not in df.columns]
    if missing:
        raise InputError(f"{path}: missing column(s) {', '.join(missing)}; expected the evaluate dataset contract")
    if df[keys.TASK_ID].duplicated().any():
        dup = df.loc[df[keys.TASK_ID].duplicated(), keys.TASK_ID].iloc[0]
        raise InputError(f"{path}: task_id {dup} appears more than once; expected one row per task")
    passes = [c for c in (keys.TEST_PASSED, *VERDICT_PASS_COLUMNS) if c in df.columns]
    for column in passes:
        if df[column].isna().any():
            raise InputError(f"{path}: {column} has null values; expected True/False for every task")
    df = df.astype({keys.TASK_ID: np.int64, **dict.fromkeys(passes, bool)})
    if keys.CYCLOMATIC_COMPLEXITY in df.columns:
        df[keys.CYCLOMATIC_COMPLEXITY] = pd.to_numeric(df[keys.CYCLOMATIC_COMPLEXITY]).astype("Int64")
    return df.sort_values(keys.TASK_ID, ignore_index=True)
