"""The generate stage's output folder: ``generations.parquet`` committed in small batches, and its metadata.

Every commit rewrites the parquet whole through an atomic rename (a few MB for 388 problems),
so the file holds whole committed batches only: a SIGKILL loses the requests in flight and the
rows waiting for the next commit, and a rerun loads the rows and generates only the missing
tasks. Columns: :mod:`artifacts.schema.generations` and data/README.md; rows sorted by ``task_id``.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from artifacts.errors import InputError
from artifacts.files import atomic_path, read_optional_json, write_json
from artifacts.layout import GENERATIONS_FILE, GENERATIONS_METADATA_FILE
from artifacts.schema import generations as cols

SCHEMA = pa.schema(
    [
        (cols.COL_TASK_ID, pa.int64()),
        (cols.COL_PROMPT, pa.string()),
        (cols.COL_PROMPT_TOKEN_IDS, pa.list_(pa.int32())),
        (cols.COL_COMPLETION_TOKEN_IDS, pa.list_(pa.int32())),
        (cols.COL_COMPLETION, pa.string()),
        (cols.COL_FINISH_REASON, pa.string()),
        (cols.COL_N_PROMPT_TOKENS, pa.int64()),
        (cols.COL_N_COMPLETION_TOKENS, pa.int64()),
        (cols.COL_GENERATION_TIME, pa.float64()),
    ]
)
assert tuple(SCHEMA.names) == cols.COLUMNS


class GenerationStore:
    """Read and commit the rows of one output folder (``DATA_DIR/phase7_3`` by default)."""

    def __init__(self, output_dir: str | os.PathLike[str]) -> None:
        self.output_dir = Path(output_dir)
        self.parquet_path = self.output_dir / GENERATIONS_FILE
        self.metadata_path = self.output_dir / GENERATIONS_METADATA_FILE
        self.table: pa.Table = SCHEMA.empty_table()  # the rows committed so far, sorted by task_id

    @property
    def done_ids(self) -> set[int]:
        return set(self.table.column(cols.COL_TASK_ID).to_pylist())

    def open(self) -> dict[str, Any] | None:
        """Load the rows committed earlier (none without a parquet); return the earlier metadata, if any.

        Raises:
            InputError: the parquet is unreadable or lacks a column, or the metadata is no JSON object.
        """
        self.output_dir.mkdir(parents=True, exist_ok=True)
        for name in (GENERATIONS_FILE, GENERATIONS_METADATA_FILE):  # what a SIGKILL during a write leaves
            for tmp in self.output_dir.glob(f".{name}.*.tmp"):
                tmp.unlink(missing_ok=True)
        meta = read_optional_json(self.metadata_path)
        if not self.parquet_path.is_file():
            return meta
        try:
            table = pq.read_table(self.parquet_path)
        except (pa.ArrowException, OSError) as exc:
            raise InputError(f"{self.parquet_path}: unreadable ({exc}); pass --overwrite to start over") from exc
        missing = [name for name in SCHEMA.names if name not in table.column_names]
        if missing:
            raise InputError(f"{self.parquet_path}: missing column(s) {', '.join(missing)}; pass --overwrite")
        self.table = table.select(SCHEMA.names).cast(SCHEMA)
        return meta

    def commit(self, rows: Iterable[Mapping[str, Any]]) -> None:
        """Add ``rows`` (new task ids) and rewrite the parquet atomically."""
        new = pa.Table.from_pylist([dict(r) for r in rows], schema=SCHEMA)
        overlap = self.done_ids & set(new.column(cols.COL_TASK_ID).to_pylist())
        if overlap:
            raise ValueError(f"task ids already committed: {sorted(overlap)[:10]}")
        table = pa.concat_tables([self.table, new]).sort_by(cols.COL_TASK_ID)
        with atomic_path(self.parquet_path) as tmp:
            pq.write_table(table, tmp)
        self.table = table

    def write_metadata(self, metadata: Mapping[str, Any]) -> None:
        write_json(self.metadata_path, dict(metadata))
