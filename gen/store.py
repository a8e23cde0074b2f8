"""The generate stage's output folder: a parquet committed in small batches, plus its metadata.

Crash safety: every commit (a batch of finished completions, see :mod:`gen.stream`)
rewrites ``generations.parquet`` whole through an atomic rename (at most a few MB for 388
problems), so the file on disk always holds whole committed batches only; a SIGKILL loses
only the requests in flight and the rows waiting for the next commit. These commits are how
a crashed run resumes: a rerun loads the rows and generates only the missing tasks. Whether
the stored rows were made with this run's settings is the completion record's question
(:func:`artifacts.records.stage_run`), asked before the store is opened.

``generations.parquet`` schema (column names in :mod:`artifacts.schema.generations`), sorted by ``task_id``:

| column               | type        | meaning                                                      |
| -------------------- | ----------- | ------------------------------------------------------------ |
| task_id              | int64       | MBPP task id                                                 |
| prompt               | string      | the rendered prompt (chat style: templated text)             |
| prompt_token_ids     | list<int32> | exactly what vLLM was fed, one BOS                           |
| completion_token_ids | list<int32> | what vLLM generated, the end-of-turn id included if it stopped |
| completion           | string      | completion ids decoded, special tokens skipped               |
| finish_reason        | string      | ``stop`` (end-of-turn id) or ``length`` (max_new_tokens)     |
| n_prompt_tokens      | int64       | len(prompt_token_ids)                                        |
| n_completion_tokens  | int64       | len(completion_token_ids)                                    |
| generation_time      | float64     | seconds from the task's submission to the step that finished it |
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
    """Read and commit the rows of one output folder.

    Args:
        output_dir: the stage's output folder (``DATA_DIR/phase7_3`` by default).
    """

    def __init__(self, output_dir: str | os.PathLike[str]) -> None:
        self.output_dir = Path(output_dir)
        self.parquet_path = self.output_dir / GENERATIONS_FILE
        self.metadata_path = self.output_dir / GENERATIONS_METADATA_FILE
        self._table: pa.Table = SCHEMA.empty_table()

    @property
    def table(self) -> pa.Table:
        """The rows committed so far (sorted by ``task_id``)."""
        return self._table

    @property
    def done_ids(self) -> set[int]:
        return set(self._table.column(cols.COL_TASK_ID).to_pylist())

    def read_metadata(self) -> dict[str, Any] | None:
        """The metadata file, or None when there is none.

        Raises:
            InputError: it exists but is not a JSON object (``--overwrite`` starts over).
        """
        return read_optional_json(self.metadata_path)

    def open(self) -> dict[str, Any] | None:
        """Load the rows committed earlier (none when there is no parquet); return the earlier metadata.

        Raises:
            InputError: the parquet is unreadable or lacks a column.
        """
        self.output_dir.mkdir(parents=True, exist_ok=True)
        self._remove_stale_temporaries()
        meta = self.read_metadata()
        if not self.parquet_path.is_file():
            return meta
        try:
            table = pq.read_table(self.parquet_path)
        except (pa.ArrowException, OSError) as exc:
            raise InputError(f"{self.parquet_path}: unreadable ({exc}); pass --overwrite to start over") from exc
        missing = [name for name in SCHEMA.names if name not in table.column_names]
        if missing:
            raise InputError(f"{self.parquet_path}: missing column(s) {', '.join(missing)}; pass --overwrite")
        self._table = table.select(SCHEMA.names).cast(SCHEMA)
        return meta

    def commit(self, rows: Iterable[Mapping[str, Any]]) -> None:
        """Add ``rows`` (new task ids) and rewrite the parquet atomically."""
        new = pa.Table.from_pylist([dict(r) for r in rows], schema=SCHEMA)
        overlap = self.done_ids & set(new.column(cols.COL_TASK_ID).to_pylist())
        if overlap:
            raise ValueError(f"task ids already committed: {sorted(overlap)[:10]}")
        table = pa.concat_tables([self._table, new]).sort_by(cols.COL_TASK_ID)
        with atomic_path(self.parquet_path) as tmp:
            pq.write_table(table, tmp)
        self._table = table

    def write_metadata(self, metadata: Mapping[str, Any]) -> None:
        write_json(self.metadata_path, dict(metadata))

    def _remove_stale_temporaries(self) -> None:
        # A SIGKILL during a write leaves atomic_path's temporary file behind.
        for name in (GENERATIONS_FILE, GENERATIONS_METADATA_FILE):
            for tmp in self.output_dir.glob(f".{name}.*.tmp"):
                tmp.unlink(missing_ok=True)
