"""A seeded sample of a run's stored token vectors (``sequence`` arrays), for the SAE's fit beyond the last prompt token.

Replay stores per task and best layer a float16 ``sequence`` (n_tokens, d_model) at the run's hook
point. Encoding every token of 388 tasks with a 16k SAE takes minutes, so ``n`` positions are drawn
uniformly over all tasks' positions (``n = 0``: every one) and read task by task. Position 0 is left
out: the first token's vector is an outlier (norm 22419 against a median 162 on the demo run) that
would dominate the FVU; SAE evaluations leave it (BOS in Gemma) out for that reason.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from artifacts.errors import InputError
from artifacts.layout import TASK_ACTIVATIONS_SUBDIR, activation_file_name
from artifacts.schema.activations import NPZ_SEQUENCE, NPZ_TOKEN_IDS
from stats.labels import Seed

SKIPPED_POSITIONS = 1  # position 0 (module docstring)
# Vectors encoded at once: task by task would stream the whole encoder (151 MB) for every few vectors.
BATCH_VECTORS = 1024


@dataclass(frozen=True)
class TokenSample:
    """Which positions of which task files are read: ``rows[i]`` of ``paths[i]``."""

    paths: tuple[Path, ...]
    rows: tuple[np.ndarray, ...]
    n_positions: int  # every eligible position of the layer's files

    @property
    def n_vectors(self) -> int:
        return int(sum(r.size for r in self.rows))

    def vectors(self, batch: int = BATCH_VECTORS) -> Iterator[np.ndarray]:
        """The sampled vectors in batches of about ``batch`` (whole tasks): Float32[ndarray, "token d_model"]."""
        pending: list[np.ndarray] = []
        for path, rows in zip(self.paths, self.rows):
            pending.append(_read_sequence(path)[rows].astype(np.float32))
            if sum(len(p) for p in pending) >= batch:
                yield np.concatenate(pending)
                pending = []
        if pending:
            yield np.concatenate(pending)


def sample_tokens(activations_dir: Path, layer: int, task_ids: Sequence[int], *, n: int,
                  seed: Seed) -> TokenSample | None:
    """A uniform sample of ``n`` positions (all when ``n`` is 0 or at least their number); None when no
    task of ``task_ids`` has a ``sequence`` at ``layer``."""
    folder = Path(activations_dir) / TASK_ACTIVATIONS_SUBDIR
    paths = [p for p in (folder / activation_file_name(int(t), layer) for t in sorted(task_ids)) if p.is_file()]
    kept = [(p, c) for p, c in ((p, _n_positions(p)) for p in paths) if c is not None and c > SKIPPED_POSITIONS]
    if not kept:
        return None
    sizes = np.array([c - SKIPPED_POSITIONS for _, c in kept], dtype=np.int64)
    total = int(sizes.sum())
    if n == 0 or n >= total:
        chosen = np.arange(total)
    else:
        chosen = np.sort(np.random.default_rng(seed).choice(total, size=n, replace=False))
    starts = np.concatenate([[0], np.cumsum(sizes)])
    task_of = np.searchsorted(starts, chosen, side="right") - 1  # which file each chosen position is in
    out_paths, out_rows = [], []
    for i in np.unique(task_of):
        out_paths.append(kept[i][0])
        out_rows.append(chosen[task_of == i] - starts[i] + SKIPPED_POSITIONS)
    return TokenSample(tuple(out_paths), tuple(out_rows), total)


def _n_positions(path: Path) -> int | None:
    """Positions of the file's ``sequence`` (from the small ``token_ids``), None without a sequence."""
    try:
        with np.load(path, allow_pickle=False) as npz:
            if NPZ_SEQUENCE not in npz.files:
                return None
            return int(np.asarray(npz[NPZ_TOKEN_IDS]).size) if NPZ_TOKEN_IDS in npz.files else len(npz[NPZ_SEQUENCE])
    except (OSError, ValueError) as exc:
        raise InputError(f"{path}: not a readable .npz file ({exc}); rerun replay-activations") from exc


def _read_sequence(path: Path) -> np.ndarray:
    try:
        with np.load(path, allow_pickle=False) as npz:
            sequence = np.asarray(npz[NPZ_SEQUENCE])
    except (OSError, ValueError, KeyError) as exc:
        raise InputError(f"{path}: no readable {NPZ_SEQUENCE} ({exc}); rerun replay-activations") from exc
    if not np.all(np.isfinite(sequence)):
        raise InputError(f"{path}: {NPZ_SEQUENCE} holds NaN or inf; rerun replay-activations")
    return sequence
