"""A run to score: its pass/fail labels (the evaluated dataset) and its last-prompt-token vectors per hook
point and layer, from the first source it stored:

1. ``feature_layer_vectors.npz`` (replay writes it; ``artifacts/schema/activations.py``): both sites,
   Float[ndarray, "task layer d_model"], at every layer the feature list names;
2. ``task_activations/{task_id}_layer_{L}.npz`` with ``resid_pre_last`` and ``resid_post_last``
   (float32 (1, d_model)): both sites, at the stored layers;
3. the same files with only ``arr_0`` (an older run): the one site its ``activations_metadata.json``
   names (or ``arr0_site``); the other site is not scored.

Only the small keys are read from the per-task files (``np.load`` is lazy), never ``sequence``.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from artifacts.errors import InputError
from artifacts.files import read_optional_json, sha256_file
from artifacts.layout import (
    ACTIVATIONS_METADATA_FILE, DATASET_METADATA_FILE, TASK_ACTIVATIONS_SUBDIR, activation_file_name,
)
from artifacts.schema import dataset as keys
from artifacts.schema import features as fm
from artifacts.schema.activations import (
    FEATURE_VECTORS_FILE, FV_KEYS, FV_LAYERS, FV_SITE_KEYS, FV_TASK_ID, HOOK_POINT, HOOK_POINTS, MODEL, NPZ_ARR_0,
    NPZ_LAST,
)
from artifacts.tables import read_dataset


@dataclass(frozen=True, eq=False)
class LayerVectors:
    """One layer's vectors at one hook point: row ``i`` of ``x`` (task, d_model) is ``task_ids[i]`` (ascending)."""

    layer: int
    hook_point: str
    task_ids: np.ndarray
    x: np.ndarray

    @property
    def d_model(self) -> int:
        return int(self.x.shape[1])


@dataclass(frozen=True, eq=False)
class RunVectors:
    """A run's vectors by ``(hook_point, layer)``, why the others are ``not_stored``, each site's source."""

    activations_dir: Path
    vectors: dict[tuple[str, int], LayerVectors]
    not_stored: dict[tuple[str, int], str]
    sources: dict[str, str]
    metadata: dict | None = None

    def sha256(self) -> str:
        """Hash of every stored vector and its task id (what the scores depend on)."""
        h = hashlib.sha256()
        for key in sorted(self.vectors):
            v = self.vectors[key]
            h.update(f"{key[0]}:{key[1]}:{v.x.shape}".encode())
            h.update(np.ascontiguousarray(v.task_ids, dtype=np.int64).tobytes())
            h.update(np.ascontiguousarray(v.x, dtype=np.float32).tobytes())
        h.update(repr(sorted(self.not_stored.items())).encode())
        return h.hexdigest()


def read_run_vectors(
    activations_dir: Path, *, layers: Sequence[int], task_ids: Sequence[int], arr0_site: str | None = None
) -> RunVectors:
    """The vectors of ``layers`` for those of ``task_ids`` that have them; InputError when nothing usable is
    stored or a file is inconsistent. ``arr0_site``: the site of ``arr_0`` when the metadata does not name it."""
    activations_dir = Path(activations_dir)
    metadata = read_optional_json(activations_dir / ACTIVATIONS_METADATA_FILE)
    wanted = np.asarray(sorted({int(t) for t in task_ids}), dtype=np.int64)
    compact = activations_dir / FEATURE_VECTORS_FILE
    if compact.is_file():
        vectors, not_stored = _from_compact(compact, layers, wanted)
        sources = {hook: f"{FEATURE_VECTORS_FILE} ({FV_SITE_KEYS[hook]})" for hook in HOOK_POINTS}
        return RunVectors(activations_dir, vectors, not_stored, sources, metadata)
    task_folder = activations_dir / TASK_ACTIVATIONS_SUBDIR
    if not task_folder.is_dir():
        raise InputError(
            f"{activations_dir}: neither {FEATURE_VECTORS_FILE} nor {TASK_ACTIVATIONS_SUBDIR}/; "
            "run replay-activations first (it stores the vectors of every listed layer) or pass --activations-dir"
        )
    return _from_task_files(activations_dir, task_folder, layers, wanted, metadata, arr0_site)


def _from_compact(path: Path, layers: Sequence[int], wanted: np.ndarray):
    try:
        with np.load(path, allow_pickle=False) as npz:
            missing = [k for k in FV_KEYS if k not in npz.files]
            if missing:
                raise InputError(f"{path}: missing {', '.join(missing)}; rerun replay-activations")
            file_ids = np.asarray(npz[FV_TASK_ID], dtype=np.int64)
            file_layers = [int(x) for x in npz[FV_LAYERS]]
            arrays = {hook: np.asarray(npz[key], dtype=np.float32) for hook, key in FV_SITE_KEYS.items()}
    except (OSError, ValueError) as exc:
        if isinstance(exc, InputError):
            raise
        raise InputError(f"{path}: not a readable .npz file ({exc}); rerun replay-activations") from exc
    if np.any(np.diff(file_ids) <= 0):
        raise InputError(f"{path}: {FV_TASK_ID} must be ascending and unique; rerun replay-activations")
    for hook, arr in arrays.items():
        if arr.ndim != 3 or arr.shape[:2] != (file_ids.size, len(file_layers)):
            raise InputError(
                f"{path}: {FV_SITE_KEYS[hook]} has shape {arr.shape}, "
                f"expected ({file_ids.size}, {len(file_layers)}, d_model)"
            )
    rows = np.isin(file_ids, wanted)
    vectors, not_stored = {}, {}
    for layer in layers:
        for hook in HOOK_POINTS:
            if layer not in file_layers:
                not_stored[(hook, layer)] = f"{path.name} holds no layer {layer} (layers {file_layers})"
                continue
            x = arrays[hook][rows, file_layers.index(layer)]
            _check_finite(x, f"{path}: {FV_SITE_KEYS[hook]} at layer {layer}")
            vectors[(hook, layer)] = LayerVectors(layer, hook, file_ids[rows], x)
    return vectors, not_stored


def _from_task_files(activations_dir: Path, task_folder: Path, layers: Sequence[int], wanted: np.ndarray,
                     metadata: dict | None, arr0_site: str | None) -> RunVectors:
    vectors, not_stored = {}, {}
    keys_by_hook: dict[str, str] | None = None
    sources: dict[str, str] = {}
    unavailable = ""
    for layer in layers:
        paths = {int(t): task_folder / activation_file_name(int(t), layer) for t in wanted}
        present = {t: p for t, p in paths.items() if p.is_file()}
        if not present:
            for hook in HOOK_POINTS:
                not_stored[(hook, layer)] = f"that run stores no vectors at layer {layer}"
            continue
        if keys_by_hook is None:
            keys_by_hook, sources, unavailable = _site_keys(next(iter(present.values())), metadata, arr0_site)
        for hook in HOOK_POINTS:
            if hook not in keys_by_hook:
                not_stored[(hook, layer)] = unavailable
                continue
            ids = np.asarray(sorted(present), dtype=np.int64)
            rows = [_read_last(present[int(t)], keys_by_hook[hook]) for t in ids]
            widths = {r.size for r in rows}
            if len(widths) > 1:
                raise InputError(f"{task_folder}: {keys_by_hook[hook]} at layer {layer} has widths {sorted(widths)}")
            vectors[(hook, layer)] = LayerVectors(layer, hook, ids, np.stack(rows))
    return RunVectors(activations_dir, vectors, not_stored, sources, metadata)


def _site_keys(sample: Path, metadata: dict | None, arr0_site: str | None) -> tuple[dict[str, str], dict[str, str], str]:
    """Which key holds which site, each site's source, and why a site is missing (every file has the same keys)."""
    with np.load(sample, allow_pickle=False) as npz:
        keys = set(npz.files)
    if all(k in keys for k in NPZ_LAST.values()):
        return dict(NPZ_LAST), {h: f"{TASK_ACTIVATIONS_SUBDIR}/ {k}" for h, k in NPZ_LAST.items()}, ""
    if NPZ_ARR_0 not in keys:
        names = ", ".join(NPZ_LAST.values())
        raise InputError(f"{sample}: no {NPZ_ARR_0} nor {names}; not a replay contract file")
    site = (metadata or {}).get(HOOK_POINT) or arr0_site
    if site not in HOOK_POINTS:
        why = (f"its hook_point {site!r} is not one of {', '.join(HOOK_POINTS)}" if site
               else f"no {HOOK_POINT} in {ACTIVATIONS_METADATA_FILE}; pass --compare-site")
        return {}, {}, f"that run stores only {NPZ_ARR_0}, at an unknown site ({why})"
    other = next(h for h in HOOK_POINTS if h != site)
    how = "per activations_metadata.json" if (metadata or {}).get(HOOK_POINT) else "as --compare-site says"
    return (
        {site: NPZ_ARR_0},
        {site: f"{TASK_ACTIVATIONS_SUBDIR}/ {NPZ_ARR_0} ({site}, {how})"},
        f"that run stores only {NPZ_ARR_0}, which is {site}, not {other}",
    )


def _read_last(path: Path, key: str) -> np.ndarray:
    try:
        with np.load(path, allow_pickle=False) as npz:
            arr = np.asarray(npz[key], dtype=np.float32)
    except KeyError as exc:
        raise InputError(f"{path}: no {key} array (other files of this run have it); rerun replay-activations") from exc
    except (OSError, ValueError) as exc:
        raise InputError(f"{path}: not a readable .npz file ({exc}); rerun replay-activations") from exc
    if arr.ndim > 2 or (arr.ndim == 2 and arr.shape[0] != 1) or arr.size == 0:
        raise InputError(f"{path}: {key} has shape {arr.shape}, expected (1, d_model)")
    arr = arr.reshape(-1)
    _check_finite(arr, f"{path}: {key}")
    return arr


def _check_finite(x: np.ndarray, where: str) -> None:
    if not np.all(np.isfinite(x)):
        raise InputError(f"{where} holds NaN or inf; rerun replay-activations")


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
