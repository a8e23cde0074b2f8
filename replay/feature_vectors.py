"""The compact feature-layer vectors file: last-prompt-token vectors of every listed layer.

``activations/feature_layer_vectors.npz`` (names in :mod:`artifacts.schema.activations`):

- ``task_id``: int64 ``(n_tasks,)``, ascending;
- ``layers``: int64 ``(n_layers,)``, ascending: every layer the SAE feature list names, plus
  the extraction layers;
- ``resid_pre``: float32 ``(n_tasks, n_layers, d_model)``, the input of block ``L`` at the last
  prompt token (Hugging Face ``hidden_states[L]``, TransformerLens ``blocks.L.hook_resid_pre``);
- ``resid_post``: float32, same shape, the output of block ``L`` there.

Resumable: while a run is in progress, each batch's rows go to their own small file in
``feature_layer_vectors.parts/`` (written atomically, numbered in the order written), so a
crash loses at most the batch in flight: the per-task files are the resume unit of the stage,
and a task's row is written before its files. The end of a run merges the previous compact
file and the parts (the newest row of a task wins), writes the compact file atomically and
removes the parts. Rows of another layer set (another feature list) are dropped, and their
tasks run again for this file only.
"""

from __future__ import annotations

import logging
import re
import shutil
import zipfile
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from artifacts.errors import InputError
from artifacts.files import write_npz
from artifacts.schema.activations import FEATURE_VECTORS_FILE, FV_KEYS, FV_LAYERS, FV_RESID_POST, FV_RESID_PRE, FV_TASK_ID

log = logging.getLogger(__name__)

PARTS_SUBDIR = FEATURE_VECTORS_FILE.removesuffix(".npz") + ".parts"
_PART_RE = re.compile(r"^part-(\d{6,})\.npz$")

# task id -> (resid_pre, resid_post), each float32 (n_layers, d_model).
Rows = dict[int, tuple[np.ndarray, np.ndarray]]


@dataclass(frozen=True, eq=False)
class FeatureVectors:
    """The arrays of one compact file (shapes in the module docstring)."""

    task_id: np.ndarray
    layers: np.ndarray
    resid_pre: np.ndarray
    resid_post: np.ndarray

    @classmethod
    def from_rows(cls, rows: Mapping[int, tuple[np.ndarray, np.ndarray]], layers: Sequence[int], d_model: int) -> "FeatureVectors":
        ids = sorted(rows)
        shape = (len(ids), len(layers), d_model)
        pre, post = np.empty(shape, dtype=np.float32), np.empty(shape, dtype=np.float32)
        for i, task_id in enumerate(ids):
            pre[i], post[i] = rows[task_id]
        return cls(np.asarray(ids, dtype=np.int64), np.asarray(layers, dtype=np.int64), pre, post)

    def rows(self) -> Rows:
        return {int(t): (self.resid_pre[i], self.resid_post[i]) for i, t in enumerate(self.task_id)}


def write_feature_vectors(path: Path, vectors: FeatureVectors) -> None:
    """Write the compact file atomically (uncompressed ``.npz``)."""
    write_npz(
        path,
        **{
            FV_TASK_ID: vectors.task_id.astype(np.int64),
            FV_LAYERS: vectors.layers.astype(np.int64),
            FV_RESID_PRE: np.ascontiguousarray(vectors.resid_pre, dtype=np.float32),
            FV_RESID_POST: np.ascontiguousarray(vectors.resid_post, dtype=np.float32),
        },
    )


def read_feature_vectors(path: Path) -> FeatureVectors:
    """Load and check one compact file (also a part file, which has the same schema).

    Raises:
        InputError: missing or damaged file, or arrays that do not fit the schema.
    """
    path = Path(path)
    try:
        with np.load(path) as npz:
            if set(npz.files) != set(FV_KEYS):
                raise InputError(f"{path}: keys {sorted(npz.files)}, expected {sorted(FV_KEYS)}; rerun replay-activations")
            vectors = FeatureVectors(*(npz[key] for key in FV_KEYS))
    except FileNotFoundError as exc:
        raise InputError(f"{path}: not found; run replay-activations") from exc
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as exc:
        raise InputError(f"{path}: not a readable .npz file ({exc}); rerun replay-activations") from exc
    n, k = vectors.task_id.shape[0], vectors.layers.shape[0]
    ok = (
        vectors.task_id.ndim == 1
        and vectors.layers.ndim == 1
        and vectors.task_id.dtype == np.int64
        and vectors.layers.dtype == np.int64
        and vectors.resid_pre.dtype == vectors.resid_post.dtype == np.float32
        and vectors.resid_pre.ndim == 3
        and vectors.resid_pre.shape[:2] == (n, k)
        and vectors.resid_post.shape == vectors.resid_pre.shape
        and bool(np.all(np.diff(vectors.task_id) > 0))
        and bool(np.all(np.diff(vectors.layers) > 0))
    )
    if not ok:
        raise InputError(f"{path}: arrays do not fit the feature-layer vectors schema; rerun replay-activations")
    return vectors


class FeatureVectorStore:
    """The compact file of one activations folder and the parts of an unfinished run.

    Args:
        activations_dir: the stage's ``activations`` folder.
        layers: the layers this run stores (ascending).
        d_model: the model width.
    """

    def __init__(self, activations_dir: Path, layers: Sequence[int], d_model: int) -> None:
        self.path = Path(activations_dir) / FEATURE_VECTORS_FILE
        self.parts_dir = Path(activations_dir) / PARTS_SUBDIR
        self.layers = tuple(int(layer) for layer in layers)
        self.d_model = int(d_model)
        self._next_part = None

    def load_rows(self) -> tuple[Rows, bool]:
        """Rows of the compact file and the parts that fit this run's layers and width.

        Returns:
            The rows (newest per task), and whether the compact file alone held them all, so
            that the file needs no rewrite when nothing else changes.
        """
        rows: Rows = {}
        clean = True
        if self.path.exists():
            vectors = self._read(self.path)
            if vectors is not None:
                rows.update(vectors.rows())
            else:
                clean = False
        for part in self._parts():
            clean = False
            vectors = self._read(part)
            if vectors is not None:
                rows.update(vectors.rows())
        return rows, clean

    def add(self, task_ids: Sequence[int], resid_pre: np.ndarray, resid_post: np.ndarray) -> Path:
        """Write one batch's rows as a new part (float32 ``(len(task_ids), n_layers, d_model)``)."""
        if self._next_part is None:
            numbers = [int(m.group(1)) for p in self._parts() if (m := _PART_RE.match(p.name))]
            self._next_part = max(numbers, default=-1) + 1
        order = np.argsort(np.asarray(task_ids, dtype=np.int64))
        part = self.parts_dir / f"part-{self._next_part:06d}.npz"
        self._next_part += 1
        write_feature_vectors(
            part,
            FeatureVectors(
                np.asarray(task_ids, dtype=np.int64)[order],
                np.asarray(self.layers, dtype=np.int64),
                np.asarray(resid_pre, dtype=np.float32)[order],
                np.asarray(resid_post, dtype=np.float32)[order],
            ),
        )
        return part

    def finish(self, rows: Rows, task_ids: Iterable[int]) -> FeatureVectors:
        """Write the compact file of ``task_ids`` from ``rows`` atomically, then remove the parts."""
        ids = sorted(set(int(t) for t in task_ids))
        missing = [t for t in ids if t not in rows]
        if missing:
            raise RuntimeError(f"no feature-layer vectors for task(s) {missing[:10]}")
        vectors = FeatureVectors.from_rows({t: rows[t] for t in ids}, self.layers, self.d_model)
        write_feature_vectors(self.path, vectors)
        shutil.rmtree(self.parts_dir, ignore_errors=True)
        return vectors

    def _parts(self) -> list[Path]:
        if not self.parts_dir.is_dir():
            return []
        return sorted(p for p in self.parts_dir.iterdir() if _PART_RE.match(p.name))

    def _read(self, path: Path) -> FeatureVectors | None:
        """A file's vectors when they fit this run (same layers and width), else None (logged)."""
        try:
            vectors = read_feature_vectors(path)
        except InputError as exc:
            log.warning("%s; its tasks are replayed again", exc)
            return None
        if tuple(vectors.layers.tolist()) != self.layers or vectors.resid_pre.shape[2] != self.d_model:
            log.info("%s holds layers %s of width %d; this run stores %s of width %d: rebuilt", path,
                     vectors.layers.tolist(), vectors.resid_pre.shape[2], list(self.layers), self.d_model)
            return None
        return vectors
