"""Load MBPP problems from a local file or the Hugging Face hub into one DataFrame.

Schema of the returned frame (one row per problem, any order):
``task_id`` int, ``text`` str, ``code`` str, ``test_list`` list[str],
``test_setup_code`` str, ``challenge_test_list`` list[str].
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from artifacts.errors import InputError
from artifacts.tables import read_table

REQUIRED_COLUMNS = ("task_id", "text", "code", "test_list")
OPTIONAL_LIST_COLUMNS = ("challenge_test_list",)
OPTIONAL_STR_COLUMNS = ("test_setup_code",)
HUB_DATASET = "google-research-datasets/mbpp"
HUB_CONFIG = "full"
MBPP_SUFFIXES = (".jsonl", ".json", ".parquet")


def load_mbpp(path: str | Path | None) -> tuple[pd.DataFrame, str]:
    """The normalized problems and a description of their source.

    Args:
        path: a ``.jsonl``, ``.json`` array or ``.parquet`` file, or ``None`` to download
            ``google-research-datasets/mbpp`` (config ``full``, every split) from the hub.
    """
    if path is None:
        df, source = _load_from_hub(), f"hf://{HUB_DATASET}/{HUB_CONFIG}"
    else:
        path = Path(path)
        df, source = read_table(path, what="MBPP file", suffixes=MBPP_SUFFIXES), str(path)
    return _normalize(df, source), source


def _load_from_hub() -> pd.DataFrame:
    # Imported lazily: `datasets` is optional and the hub is only needed when asked.
    try:
        from datasets import concatenate_datasets, load_dataset
    except ImportError as exc:
        raise InputError(
            "no --mbpp file given and the `datasets` package is missing: "
            "pass --mbpp PATH (or set PVA_MBPP), or `pip install datasets` to use the hub"
        ) from exc
    try:
        parts = load_dataset(HUB_DATASET, HUB_CONFIG)
    except Exception as exc:  # the hub raises many types when offline
        raise InputError(
            f"cannot download {HUB_DATASET} ({HUB_CONFIG}) from the Hugging Face hub "
            f"({exc.__class__.__name__}); pass --mbpp PATH or set PVA_MBPP to a local copy"
        ) from exc
    return concatenate_datasets([parts[name] for name in parts]).to_pandas()


def _normalize(df: pd.DataFrame, source: str) -> pd.DataFrame:
    missing = [c for c in REQUIRED_COLUMNS if c not in df.columns]
    if missing:
        raise InputError(f"{source}: missing column(s) {', '.join(missing)}")
    out = pd.DataFrame({"task_id": df["task_id"].astype("int64"), "text": df["text"].astype(str),
                        "code": df["code"].astype(str), "test_list": df["test_list"].map(_as_str_list)})
    for col in OPTIONAL_STR_COLUMNS:
        out[col] = df[col].fillna("").astype(str) if col in df.columns else ""
    for col in OPTIONAL_LIST_COLUMNS:
        out[col] = df[col].map(_as_str_list) if col in df.columns else [[] for _ in range(len(df))]
    dup = out["task_id"][out["task_id"].duplicated()].unique().tolist()
    if dup:
        raise InputError(f"{source}: duplicate task_id(s) {dup[:10]}")
    return out


def _as_str_list(value: object) -> list[str]:
    if value is None:
        return []
    if isinstance(value, str):
        return [value]
    return [str(v) for v in value]
