"""The generate stage's output folder: a parquet committed in small batches, plus its metadata.

Crash safety: every commit (a batch of finished completions, see :mod:`gen.stream`)
rewrites ``generations.parquet`` whole through an atomic rename (at most a few MB for 388
problems), so the file on disk always holds whole committed batches only; a SIGKILL loses
only the requests in flight and the rows waiting for the next commit. The metadata file is
written before the first commit (with the settings, ``complete: false``), after every
commit and at the end, so a rerun can always tell which settings the stored rows came from.

``generations.parquet`` schema, sorted by ``task_id``:

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

SCHEMA = pa.schema(
    [
        ("task_id", pa.int64()),
        ("prompt", pa.string()),
        ("prompt_token_ids", pa.list_(pa.int32())),
        ("completion_token_ids", pa.list_(pa.int32())),
        ("completion", pa.string()),
        ("finish_reason", pa.string()),
        ("n_prompt_tokens", pa.int64()),
        ("n_completion_tokens", pa.int64()),
        ("generation_time", pa.float64()),
    ]
)

# Settings that change which tokens come out: rows made under different values never mix.
# A local model is named by its resolved folder (plus content hash), so a relative and an
# absolute path to the same folder resume each other.
SETTINGS_KEYS = (
    "model_path",
    "model_revision",
    "model_hash",
    "dtype",
    "prompt_style",
    "max_new_tokens",
    "max_model_len",
    "stop_token_ids",
    "seed",
    "deterministic",
    "ignore_eos",
)
# Keys added after files were first written: a stored file without one was made under this value.
SETTINGS_DEFAULTS = {"ignore_eos": False}


def _setting(settings: Mapping[str, Any], key: str) -> Any:
    return settings.get(key, SETTINGS_DEFAULTS.get(key))


def settings_diff(old: Mapping[str, Any], new: Mapping[str, Any]) -> list[str]:
    """Human-readable ``key: old -> new`` for every identity setting that differs."""
    return [
        f"{k}: {_setting(old, k)!r} -> {_setting(new, k)!r}" for k in SETTINGS_KEYS if _setting(old, k) != _setting(new, k)
    ]


class GenerationStore:
    """Read, check and commit the rows of one output folder.

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
        return set(self._table.column("task_id").to_pylist())

    def read_metadata(self) -> dict[str, Any] | None:
        """The metadata file, or None when there is none.

        Raises:
            InputError: it exists but is not a JSON object (``--overwrite`` starts over).
        """
        return read_optional_json(self.metadata_path)

    def open(self, settings: Mapping[str, Any], *, overwrite: bool) -> dict[str, Any] | None:
        """Load earlier rows made with the same ``settings``; return the earlier metadata.

        Args:
            settings: the identity settings of this run (keys of :data:`SETTINGS_KEYS`).
            overwrite: discard earlier rows and metadata instead of resuming.

        Raises:
            InputError: earlier rows exist under other settings, or without metadata.
        """
        self.output_dir.mkdir(parents=True, exist_ok=True)
        self._remove_stale_temporaries()
        if overwrite:
            for path in (self.parquet_path, self.metadata_path):
                path.unlink(missing_ok=True)
            return None
        meta = self.read_metadata()
        if not self.parquet_path.is_file():
            return meta if meta and not settings_diff(meta.get("settings", {}), settings) else None
        if meta is None or "settings" not in meta:
            raise InputError(
                f"{self.parquet_path}: exists without {self.metadata_path.name}, so its settings are unknown; "
                "pass --overwrite to replace it or choose another --output-dir"
            )
        diff = settings_diff(meta["settings"], settings)
        if diff:
            raise InputError(
                f"{self.parquet_path}: made with other settings ({'; '.join(diff)}); "
                "pass --overwrite to replace it or choose another --output-dir"
            )
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
        overlap = self.done_ids & set(new.column("task_id").to_pylist())
        if overlap:
            raise ValueError(f"task ids already committed: {sorted(overlap)[:10]}")
        table = pa.concat_tables([self._table, new]).sort_by("task_id")
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
