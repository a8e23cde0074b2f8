"""A run to score: its pass/fail labels (the evaluated dataset) and its vectors (``features/vectors.py``)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from artifacts.errors import InputError
from artifacts.files import read_optional_json, sha256_file
from artifacts.layout import DATASET_METADATA_FILE
from artifacts.schema import dataset as keys
from artifacts.schema import features as fm
from artifacts.schema.activations import HOOK_POINT, HOOK_POINTS, MODEL
from artifacts.tables import read_dataset
from features.vectors import RunVectors, read_run_vectors


@dataclass(frozen=True)
class Run:
    """One run's labels and vectors."""

    label: str
    dataset_path: Path
    passed: dict[int, bool]
    vectors: RunVectors
    sequence_site: str | None = None  # the site of the per-task `sequence` arrays (and arr_0), if known

    def counts(self) -> dict:
        """Tasks with vectors at some listed layer (and of them passed / failed), and tasks without."""
        with_vectors: set[int] = set()
        for v in self.vectors.vectors.values():
            with_vectors.update(int(t) for t in v.task_ids)
        n_passed = sum(self.passed[t] for t in with_vectors)
        return {
            fm.N_TASKS: len(with_vectors),
            fm.N_PASSED: int(n_passed),
            fm.N_FAILED: len(with_vectors) - int(n_passed),
            fm.N_MISSING: len(set(self.passed) - with_vectors),
        }

    def d_model(self) -> int:
        """The vectors' width; InputError without vectors or with vectors of different widths."""
        widths = {v.d_model for v in self.vectors.vectors.values()}
        if not widths:
            raise InputError(
                f"{self.vectors.activations_dir}: {self.label} stores no vectors at any listed layer; "
                "rerun replay-activations"
            )
        if len(widths) > 1:
            raise InputError(f"{self.vectors.activations_dir}: vectors of different widths {sorted(widths)}")
        return widths.pop()

    def passed_of(self, task_ids: np.ndarray) -> np.ndarray:
        """Bool[ndarray, "task"]: whether each of ``task_ids`` passed."""
        return np.array([self.passed[int(t)] for t in task_ids], dtype=bool)

    def model(self) -> str | None:
        """The model of ``activations_metadata.json``, or None."""
        return (self.vectors.metadata or {}).get(MODEL)


def read_run(dataset_path: Path, activations_dir: Path, layers: Sequence[int], *, label: str = "this run",
             arr0_site: str | None = None) -> Run:
    """A run's labels (``task_id``, ``test_passed``) and its vectors at ``layers``."""
    dataset = read_dataset(dataset_path, required=(keys.TASK_ID, keys.TEST_PASSED))
    passed = dict(zip(dataset[keys.TASK_ID].tolist(), dataset[keys.TEST_PASSED].tolist()))
    vectors = read_run_vectors(activations_dir, layers=layers, task_ids=list(passed), arr0_site=arr0_site)
    site = (vectors.metadata or {}).get(HOOK_POINT) or arr0_site
    return Run(label, Path(dataset_path), passed, vectors, site if site in HOOK_POINTS else None)


def read_compare_run(dataset_path: Path, activations_dir: Path, layers: Sequence[int], site: str | None) -> Run:
    """The comparison run, labelled by its model: ``metadata.json``'s ``model_name`` beside its dataset
    (evaluate), else ``activations_metadata.json``'s ``model`` (replay), else the dataset's stem."""
    run = read_run(dataset_path, activations_dir, layers, label="", arr0_site=site)
    meta = read_optional_json(Path(dataset_path).parent / DATASET_METADATA_FILE) or {}
    model = meta.get(keys.MODEL_NAME) or run.model()
    return replace(run, label=Path(str(model)).name if model else f"compare ({Path(dataset_path).stem})")


def inputs_block(run: Run, feature_list_path: Path) -> dict:
    """The metadata's ``inputs`` block: what was read, with content hashes."""
    return {**_read_from(run), "vectors_sha256": run.vectors.sha256(), "feature_list": str(feature_list_path),
            "feature_list_sha256": sha256_file(feature_list_path)}


def compare_block(run: Run) -> dict:
    """The metadata's ``compare`` block, counts aside."""
    return {fm.COMPARE_LABEL: run.label, **_read_from(run), fm.VECTOR_SOURCES: run.vectors.sources}


def _read_from(run: Run) -> dict:
    return {"dataset": str(run.dataset_path), "dataset_sha256": sha256_file(run.dataset_path),
            "activations_dir": str(run.vectors.activations_dir)}
