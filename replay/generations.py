"""Read the generate stage's files: the exact token ids to replay and the settings they came from."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from artifacts.errors import InputError
from artifacts.files import read_optional_json
from artifacts.schema.generations import MODEL

# TODO(lead): gen's schema names these columns (COL_TASK_ID, ...) on the s18-gen branch; import them at merge.
REQUIRED_COLUMNS = ("task_id", "prompt_token_ids", "completion_token_ids")


@dataclass(frozen=True, eq=False)
class ReplayTask:
    """One generation to replay: ``token_ids`` is prompt + completion, int32 ``(n_tokens,)``."""

    task_id: int
    token_ids: np.ndarray
    n_prompt_tokens: int

    @property
    def n_tokens(self) -> int:
        return int(self.token_ids.shape[0])


def read_generations(path: str | Path) -> list[ReplayTask]:
    """Tasks of ``generations.parquet``, sorted by ``task_id``.

    Raises:
        InputError: missing file or column, duplicate task ids, an empty prompt, or an
            ``n_prompt_tokens`` column that disagrees with ``prompt_token_ids``.
    """
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: generations file not found; run `python cli.py generate` first")
    try:
        df = pd.read_parquet(path)
    except Exception as exc:  # pyarrow raises several types for unreadable files
        raise InputError(f"{path}: cannot read parquet ({exc})") from exc
    missing = [c for c in REQUIRED_COLUMNS if c not in df.columns]
    if missing:
        raise InputError(f"{path}: missing column(s) {', '.join(missing)}; is it a generations file?")
    duplicated = sorted(set(df.loc[df["task_id"].duplicated(), "task_id"].tolist()))
    if duplicated:
        raise InputError(f"{path}: duplicate task_id(s) {duplicated[:10]}")
    tasks = []
    for row in df.sort_values("task_id").itertuples(index=False):
        prompt = np.asarray(row.prompt_token_ids, dtype=np.int32)
        if prompt.size == 0:
            raise InputError(f"{path}: task {row.task_id} has no prompt tokens")
        if "n_prompt_tokens" in df.columns and int(row.n_prompt_tokens) != prompt.size:
            raise InputError(f"{path}: task {row.task_id} n_prompt_tokens={row.n_prompt_tokens} but "
                             f"{prompt.size} prompt_token_ids; regenerate the file")
        token_ids = np.concatenate([prompt, np.asarray(row.completion_token_ids, dtype=np.int32)])
        tasks.append(ReplayTask(int(row.task_id), token_ids, int(prompt.size)))
    return tasks


def read_generations_metadata(path: Path) -> dict[str, Any]:
    """``generations_metadata.json`` (model, revision, dtype, ...), which the replay mirrors."""
    meta = read_optional_json(path)
    if meta is None:
        raise InputError(f"{path}: generations metadata not found; run `python cli.py generate` first")
    if not meta.get(MODEL):
        raise InputError(f"{path}: needs a '{MODEL}' key naming the model the tokens came from")
    return meta
