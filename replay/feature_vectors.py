"""The compact feature-layer vectors file: last-prompt-token vectors of every listed layer.

``activations/feature_layer_vectors.npz`` (keys, dtypes and shapes in
:mod:`artifacts.schema.activations`, ``FV_*``): ``task_id`` and ``layers`` ascending (every
layer the SAE feature list names, plus the extraction layers), and ``resid_pre`` /
``resid_post`` float32 ``(n_tasks, n_layers, d_model)``, both residual sites of block ``L``
at the last prompt token.

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
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from artifacts.errors import InputError
from artifacts.files import write_npz
from artifacts.schema.activations import FEATURE_VECTORS_FILE, FV_KEYS

log = logging.getLogger(__name__)

PARTS_SUBDIR = FEATURE_VECTORS_FILE.removesuffix(".npz") + ".parts"
_PART_RE = re.compile(r"^part-(\d{6,})\.npz$")

# task id -> (resid_pre, resid_post), each float32 (n_layers, d_model).
Rows = dict[int, tuple[np.ndarray, np.ndarray]]


@dataclass(frozen=True, eq=False)
class FeatureVectors:
    """The arrays of one compact file, in ``FV_KEYS`` order."""

    task_id: np.ndarray
    layers: np.ndarray
    resid_pre: np.ndarray
    resid_post: np.ndarray


def write_feature_vectors(path: Path, vectors: FeatureVectors) -> None:
    """Write the compact file atomically (uncompressed ``.npz``)."""
    arrays = (vectors.task_id.astype(np.int64), vectors.layers.astype(np.int64),
              np.ascontiguousarray(vectors.resid_pre, dtype=np.float32), np.ascontiguousarray(vectors.resid_post, dtype=np.float32))
    write_npz(path, **dict(zip(FV_KEYS, arrays)))


def read_feature_vectors(path: Path) -> FeatureVectors:
    """Load and check one compact file (also a part file, which has the same schema).

    Raises:
        InputError: missing or damaged file, or arrays that do not fit the schema.
    """
    try:
        with np.load(path) as npz:
            if set(npz.files) != set(FV_KEYS):
                raise InputError(f"{path}: keys {sorted(npz.files)}, expected {sorted(FV_KEYS)}; rerun replay-activations")
            v = FeatureVectors(*(npz[key] for key in FV_KEYS))
    except FileNotFoundError as exc:
        raise InputError(f"{path}: not found; run replay-activations") from exc
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as exc:
        raise InputError(f"{path}: not a readable .npz file ({exc}); rerun replay-activations") from exc
    ok = (
        v.task_id.ndim == v.layers.ndim == 1
        and v.task_id.dtype == v.layers.dtype == np.int64
        and v.resid_pre.dtype == v.resid_post.dtype == np.float32
        and v.resid_pre.ndim == 3
        and v.resid_pre.shape[:2] == (v.task_id.shape[0], v.layers.shape[0])
        and v.resid_post.shape == v.resid_pre.shape
        and bool(np.all(np.diff(v.task_id) > 0) and np.all(np.diff(v.layers) > 0))
    )
    if not ok:
        raise InputError(f"{path}: arrays do not fit the feature-layer vectors schema; rerun replay-activations")
    return v


class FeatureVectorStore:
    """The compact file of one ``activations`` folder and the parts of an unfinished run, at this
    run's ``layers`` (ascending) and width ``d_model``."""

    def __init__(self, activations_dir: Path, layers: Sequence[int], d_model: int) -> None:
        self.path = Path(activations_dir) / FEATURE_VECTORS_FILE
        self.parts_dir = Path(activations_dir) / PARTS_SUBDIR
        self.layers = tuple(int(layer) for layer in layers)
        self.d_model = int(d_model)
        # Parts are numbered on from an unfinished run's: the newest row of a task wins.
        self._next_part = max((int(_PART_RE.match(p.name).group(1)) for p in self._parts()), default=-1) + 1

    def load_rows(self) -> tuple[Rows, bool]:
        """Rows of the compact file and the parts that fit this run's layers and width.

        Returns:
            The rows (newest per task), and whether the compact file alone held them all, so
            that the file needs no rewrite when nothing else changes.
        """
        rows: Rows = {}
        parts = self._parts()
        clean = not parts
        for path in [self.path, *parts] if self.path.exists() else parts:
            vectors = self._read(path)
            if vectors is None:
                clean = False
            else:
                rows.update((int(t), (vectors.resid_pre[i], vectors.resid_post[i])) for i, t in enumerate(vectors.task_id))
        return rows, clean

    def add(self, task_ids: Sequence[int], resid_pre: np.ndarray, resid_post: np.ndarray) -> None:
        """Write one batch's rows as a new part (float32 ``(len(task_ids), n_layers, d_model)``)."""
        order = np.argsort(np.asarray(task_ids, dtype=np.int64))
        vectors = FeatureVectors(np.asarray(task_ids, dtype=np.int64)[order], np.asarray(self.layers, dtype=np.int64),
                                 np.asarray(resid_pre, dtype=np.float32)[order], np.asarray(resid_post, dtype=np.float32)[order])
        write_feature_vectors(self.parts_dir / f"part-{self._next_part:06d}.npz", vectors)
        self._next_part += 1

    def finish(self, rows: Rows, task_ids: Iterable[int]) -> FeatureVectors:
        """Write the compact file of ``task_ids`` from ``rows`` atomically, then remove the parts."""
        ids = sorted(set(int(t) for t in task_ids))
        missing = [t for t in ids if t not in rows]
        if missing:
            raise RuntimeError(f"no feature-layer vectors for task(s) {missing[:10]}")
        pre, post = (np.stack([rows[t][site] for t in ids]) for site in (0, 1))
        vectors = FeatureVectors(np.asarray(ids, dtype=np.int64), np.asarray(self.layers, dtype=np.int64), pre, post)
        write_feature_vectors(self.path, vectors)
        shutil.rmtree(self.parts_dir, ignore_errors=True)
        return vectors

    def _parts(self) -> list[Path]:
        return sorted(p for p in self.parts_dir.glob("part-*.npz") if _PART_RE.match(p.name))

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
