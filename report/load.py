"""Read the files the report summarizes; only the evaluated dataset is required.

Beside the dataset: ``metadata.json``, ``generations.parquet`` (its small columns only, never the
token ids), ``generations_metadata.json``. In the activations folder: ``activations_metadata.json``
and ``task_activations/``, of whose files only ``arr_0`` (Float[ndarray, "1 d_model"], the last
prompt token) is read.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq

from artifacts.errors import InputError
from artifacts.files import read_optional_json
from artifacts.layout import (
    ACTIVATIONS_METADATA_FILE, DATASET_METADATA_FILE, GENERATIONS_FILE, GENERATIONS_METADATA_FILE,
    TASK_ACTIVATIONS_SUBDIR, activation_file_name,
)
from artifacts.schema import activations as act_keys
from artifacts.schema import dataset as keys
from artifacts.tables import read_dataset

DATASET_REQUIRED = (keys.TASK_ID, keys.TEST_PASSED, keys.CYCLOMATIC_COMPLEXITY)
GENERATION_COLUMNS = ("task_id", "finish_reason", "n_prompt_tokens", "n_completion_tokens")
# File names are matched against the one definition of the pattern, with two markers for the ids.
ACTIVATION_FILE_RE = re.compile(re.escape(activation_file_name(918273645, 546372819))
                                .replace("918273645", r"(?P<task>\d+)").replace("546372819", r"(?P<layer>\d+)"))


@dataclass(frozen=True)
class LayerActivations:
    """Last-prompt-token activations of one layer for the dataset's tasks that have them.

    ``x`` is Float[ndarray, "task d_model"] (float32), row ``i`` belongs to ``task_ids[i]``
    (ascending). ``missing_task_ids`` are dataset tasks without a file at this layer.
    """

    layer: int
    task_ids: np.ndarray
    x: np.ndarray
    missing_task_ids: tuple[int, ...]


@dataclass(frozen=True)
class ReportInputs:
    """Everything the report reads; optional files are None (or empty) when absent."""

    dataset_path: Path
    dataset: pd.DataFrame
    metadata: dict | None
    generations: pd.DataFrame | None
    generations_metadata: dict | None
    activations_metadata: dict | None
    activations: tuple[LayerActivations, ...]


def load_inputs(*, dataset_path: Path, activations_dir: Path) -> ReportInputs:
    """Read the dataset and whichever of its companion files exist.

    Activations are read for the layers named by the activations metadata, else the dataset
    metadata's ``extraction_layers``, else the files found in ``activations_dir/task_activations``.
    """
    dataset_path = Path(dataset_path)
    dataset = read_dataset(dataset_path, required=DATASET_REQUIRED)
    folder = dataset_path.parent
    metadata = read_optional_json(folder / DATASET_METADATA_FILE)
    activations_metadata = read_optional_json(Path(activations_dir) / ACTIVATIONS_METADATA_FILE)
    task_folder = Path(activations_dir) / TASK_ACTIVATIONS_SUBDIR
    named = (activations_metadata or {}).get(act_keys.LAYERS) or (metadata or {}).get(keys.EXTRACTION_LAYERS)
    layers = sorted({int(layer) for layer in named}) if named else discover_layers(task_folder)
    task_ids = dataset["task_id"].to_numpy()
    return ReportInputs(
        dataset_path=dataset_path,
        dataset=dataset,
        metadata=metadata,
        generations=read_generations(folder / GENERATIONS_FILE),
        generations_metadata=read_optional_json(folder / GENERATIONS_METADATA_FILE),
        activations_metadata=activations_metadata,
        activations=tuple(read_layer(task_folder, layer, task_ids) for layer in layers) if task_folder.is_dir() else (),
    )


def read_generations(path: Path) -> pd.DataFrame | None:
    """The small columns of ``generations.parquet`` (those present), or None when absent."""
    if not path.is_file():
        return None
    try:
        names = pq.read_schema(path).names
        frame = pd.read_parquet(path, columns=[c for c in GENERATION_COLUMNS if c in names])
    except Exception as exc:  # pyarrow raises several types for a damaged file
        raise InputError(f"{path}: not a readable parquet file ({exc})") from exc
    if "task_id" not in frame:
        raise InputError(f"{path}: no task_id column; expected the generate contract")
    return frame


def read_layer(task_folder: Path, layer: int, task_ids: np.ndarray) -> LayerActivations:
    """Stack ``arr_0`` of the given tasks' activation files at ``layer``, for those that have one.

    Raises InputError when a file does not hold a finite ``arr_0`` of one consistent width.
    """
    found: list[int] = []
    rows: list[np.ndarray] = []
    missing: list[int] = []
    for task_id in task_ids:
        path = task_folder / activation_file_name(task_id, layer)
        if not path.is_file():
            missing.append(int(task_id))
            continue
        row = _read_last_prompt_token(path)
        if rows and row.size != rows[0].size:
            raise InputError(f"{path}: arr_0 has {row.size} values, other tasks {rows[0].size}; "
                             "rerun replay-activations")
        found.append(int(task_id))
        rows.append(row)
    x = np.stack(rows) if rows else np.zeros((0, 0), dtype=np.float32)
    return LayerActivations(layer, np.asarray(found, dtype=np.int64), x, tuple(missing))


def discover_layers(task_folder: Path) -> list[int]:
    """Layers that have at least one activation file in ``task_folder``, ascending."""
    if not task_folder.is_dir():
        return []
    return sorted({int(m.group("layer")) for p in task_folder.iterdir() if (m := ACTIVATION_FILE_RE.fullmatch(p.name))})


def _read_last_prompt_token(path: Path) -> np.ndarray:
    key = act_keys.NPZ_ARR_0
    try:
        with np.load(path) as npz:  # lazy: only arr_0 is read, not the full sequence
            arr = np.asarray(npz[key], dtype=np.float32)
    except KeyError as exc:
        raise InputError(f"{path}: no {key} array; expected the replay-activations contract") from exc
    except (OSError, ValueError) as exc:
        raise InputError(f"{path}: not a readable .npz file ({exc}); rerun replay-activations") from exc
    if arr.size == 0 or arr.ndim > 2 or (arr.ndim == 2 and arr.shape[0] != 1):
        raise InputError(f"{path}: {key} has shape {arr.shape}, expected (1, d_model); rerun replay-activations")
    if not np.all(np.isfinite(arr)):
        raise InputError(f"{path}: {key} holds NaN or inf; rerun replay-activations")
    return arr.reshape(-1)
