"""The front door of the replay stage: generations in, activation files and metadata out.

Work is per batch of tasks; each task's files (and its row of the compact feature-layer
vectors file, as a small part file) are written atomically as soon as its batch finishes,
and nothing but the compact rows is kept between batches, so a crash loses at most the
batch in flight. A rerun skips tasks whose files exist, load and hold the same token ids,
replays tasks whose files exist but whose compact row is missing or disagrees with them
(for the compact file only), and rewrites the compact file when anything changed.
"""

from __future__ import annotations

import gc
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass, fields
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm.auto import tqdm

from artifacts.errors import InputError
from artifacts.files import read_optional_json, sha256_file, write_json
from artifacts.layout import (
    ACTIVATIONS_METADATA_FILE,
    ACTIVATIONS_SUBDIR,
    GENERATIONS_METADATA_FILE,
    TASK_ACTIVATIONS_SUBDIR,
)
from artifacts.schema import activations as keys
from artifacts.versions import package_version
from artifacts.feature_list import BestLayers, check_layers
from replay.capture import CapturePlan, capture_batch, make_batches
from replay.feature_vectors import FeatureVectorStore, Rows, row_matches
from replay.generations import ReplayTask, read_generations, read_generations_metadata
from replay.hook_sites import DEFAULT_HOOK_SITE, HookSite
from replay.model import ModelShape, ModelSpec, load_bridge, model_spec, read_model_shape, same_model
from replay.store import (
    DEFAULT_ACTIVATION_FORMAT,
    ActivationFormat,
    remove_stale_files,
    stored_last_vectors,
    write_task_layer,
)
from replay.verify import VerifyResult, verify_activations

log = logging.getLogger(__name__)

# Default sequences per forward, by (device, dtype); measured with bench/replay.py (32 demo
# tasks, ~285 tokens each). CPU (2 cores): one by one 1250 tokens/s, batches of 8 855: padding
# and longer attention rows cost more than batching saves. H200, float32: 7950 vs 37600
# tokens/s. Half precision stays one by one: batched kernels round differently (2e-2 relative
# in bfloat16 on Gemma-2-2b shapes, vs ~1e-6 in float32), so activations would depend on
# which tasks share a batch.
GPU_FLOAT32_BATCH_SIZE = 8


def default_batch_size(spec: ModelSpec) -> int:
    """8 for float32 on a GPU, else 1 (see the measurements above)."""
    return GPU_FLOAT32_BATCH_SIZE if spec.device == "cuda" and spec.dtype == torch.float32 else 1


# Settings that change the stored numbers: a resumed run must not mix them.
SETTING_KEYS = (keys.MODEL, keys.DTYPE, keys.HOOK_POINT)


@dataclass(frozen=True)
class ReplayResult:
    """What one call did (``metadata`` is what was written to ``metadata_path``).

    ``n_replayed`` tasks had their per-task files written; ``n_feature_vectors_replayed``
    more ran only to fill the compact feature-layer vectors file.
    """

    activations_dir: Path
    metadata_path: Path
    feature_vectors_path: Path
    n_tasks: int
    n_replayed: int
    n_skipped: int
    n_feature_vectors_replayed: int
    n_tokens_replayed: int
    wall_time_s: float
    tokens_per_s: float | None
    verify: VerifyResult | None
    metadata: dict[str, Any]


def replay_activations(
    *,
    generations_path: str | Path,
    output_dir: str | Path,
    best_layers: BestLayers,
    model: str | None = None,
    dtype: str | None = None,
    device: str = "auto",
    hook_point: HookSite | str = DEFAULT_HOOK_SITE,
    activation_format: ActivationFormat | str = DEFAULT_ACTIVATION_FORMAT,
    batch_size: int | None = None,
    verify: int = 0,
    overwrite: bool = False,
    show_progress: bool = True,
) -> ReplayResult:
    """Replay every generation; store residual activations at the best layers and the
    last-prompt-token vectors of every listed layer.

    Args:
        generations_path: ``generations.parquet``; ``generations_metadata.json`` is read
            from the same folder.
        output_dir: the stage folder; files go to ``output_dir/activations/``.
        best_layers: the layers to store (``artifacts.feature_list.resolve_layers``); its
            ``listed_layers`` (every layer the SAE feature list names) go to the compact file.
        model: model name or folder; default the generations' model (another one warns).
        dtype: ``float32``, ``bfloat16`` or ``float16``; default the generations' dtype.
        device: ``auto``, ``cpu`` or ``cuda``.
        hook_point: ``resid_pre`` (input of block L, the earlier phases' site; default) or
            ``resid_post`` (its output): the site of ``arr_0`` and ``sequence``.
        activation_format: ``npz`` (default), ``safetensors`` or ``both``.
        batch_size: sequences per forward, grouped by length; default 8 for float32 on a
            GPU, else 1 (see :func:`default_batch_size`).
        verify: check this many sampled tasks against Hugging Face (0: no check).
        overwrite: redo tasks whose files exist, and allow changing model, dtype or hook point.
        show_progress: show tqdm bars.

    Raises:
        InputError: bad files, layers outside the model, or settings that differ from the
            existing activations without ``overwrite``. Raised before any model weights load.
    """
    site = _choice(HookSite, hook_point, "--hook-point")
    fmt = _choice(ActivationFormat, activation_format, "--activation-format")
    if batch_size is not None and batch_size < 1:
        raise InputError(f"--batch-size {batch_size}: must be at least 1")
    if verify < 0:
        raise InputError(f"--verify {verify}: must be 0 or more")
    generations_path = Path(generations_path)
    tasks = read_generations(generations_path)
    gen_meta = read_generations_metadata(generations_path.parent / GENERATIONS_METADATA_FILE)
    if not tasks:
        raise InputError(f"{generations_path}: no generations to replay")
    spec = model_spec(gen_meta, model=model, dtype=dtype, device=device)
    batch_size = batch_size or default_batch_size(spec)
    shape = read_model_shape(spec)
    layers = list(best_layers.extraction_layers)
    check_layers(layers, shape.n_layers, spec.name)
    _check_lengths(tasks, shape, spec.name)
    vector_layers, outside = feature_vector_layers(best_layers, shape.n_layers)
    if outside:
        log.warning(
            "the feature list %s names layer(s) %s outside model %s (%d layers); they are left out of %s",
            best_layers.source, outside, spec.name, shape.n_layers, keys.FEATURE_VECTORS_FILE,
        )
    plan = CapturePlan(site=site, sequence_layers=tuple(layers), last_layers=vector_layers, n_layers=shape.n_layers)

    activations_dir = Path(output_dir) / ACTIVATIONS_SUBDIR
    folder = activations_dir / TASK_ACTIVATIONS_SUBDIR
    metadata_path = activations_dir / ACTIVATIONS_METADATA_FILE
    previous = read_optional_json(metadata_path)
    if previous is not None and not overwrite:
        _check_same_settings(previous, spec, site, metadata_path)
    else:
        previous = None  # --overwrite starts the bookkeeping afresh

    store = FeatureVectorStore(activations_dir, vector_layers, shape.d_model)
    if overwrite:
        store.discard()
        rows, clean = {}, False
    else:
        rows, clean = store.load_rows()
    todo, vectors_only = _todo(tasks, folder=folder, layers=layers, shape=shape, site=site, fmt=fmt, rows=rows,
                               vector_layers=vector_layers, overwrite=overwrite)
    rewrite = bool(todo or vectors_only) or not clean or set(rows) != {t.task_id for t in tasks}

    settings = _settings(
        spec=spec, shape=shape, site=site, fmt=fmt, best_layers=best_layers, plan=plan, outside=outside,
        gen_meta=gen_meta, generations_path=generations_path, tasks=tasks, batch_size=batch_size,
    )
    stats = _ReplayStats()
    if rewrite:
        # Settings go to disk before the work, so a crashed run's files can be checked on resume.
        write_json(metadata_path, {**(previous or {}), **settings, keys.COMPLETE: False})
    if todo or vectors_only:
        _replay(todo, vectors_only, spec=spec, shape=shape, folder=folder, plan=plan, fmt=fmt, store=store,
                rows=rows, batch_size=batch_size, stats=stats, show_progress=show_progress)
    if rewrite:
        store.finish(rows, [t.task_id for t in tasks])
    del rows

    verify_result = None
    # An earlier check still holds when this run changed no file; a rerun of a finished
    # stage therefore does not reload the model just to verify the same files again.
    finished = previous is not None and previous.get(keys.COMPLETE) is True  # not a crashed run's leftovers
    earlier = keys.verify_block(previous) if finished and not rewrite else None
    # A check made before it covered both hook points and the compact file does not count.
    current = earlier is not None and {f.name for f in fields(VerifyResult)} <= earlier.keys()
    if verify and not (current and earlier.get(keys.VERIFY_N_TASKS, 0) >= verify):
        verify_result = verify_activations(
            spec=spec, tasks=tasks, folder=folder, layers=layers, site=site, fmt=fmt,
            feature_vectors_path=store.path, n=verify, show_progress=show_progress,
        )
        verify_meta = verify_result.to_metadata()
    else:
        verify_meta = earlier

    metadata = {
        **settings,
        **_cumulative(previous, stats),
        "n_replayed": len(todo),
        "n_skipped": len(tasks) - len(todo),
        "n_feature_vectors_replayed": len(vectors_only),
        "load_time_s": stats.load_time_s,
        keys.VERIFY: verify_meta,
        "transformer_lens" + keys.VERSION_SUFFIX: package_version("transformer-lens", "transformer_lens"),
        "transformers" + keys.VERSION_SUFFIX: package_version("transformers"),
        "torch" + keys.VERSION_SUFFIX: torch.__version__,
        "safetensors" + keys.VERSION_SUFFIX: package_version("safetensors") if "safetensors" in fmt.suffixes else None,
        "creation_timestamp": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        keys.COMPLETE: True,
    }
    write_json(metadata_path, metadata)
    return ReplayResult(
        activations_dir=activations_dir,
        metadata_path=metadata_path,
        feature_vectors_path=store.path,
        n_tasks=len(tasks),
        n_replayed=len(todo),
        n_skipped=len(tasks) - len(todo),
        n_feature_vectors_replayed=len(vectors_only),
        n_tokens_replayed=stats.n_tokens,
        wall_time_s=stats.wall_time_s,
        tokens_per_s=stats.tokens_per_s,
        verify=verify_result,
        metadata=metadata,
    )


def feature_vector_layers(best_layers: BestLayers, n_layers: int) -> tuple[tuple[int, ...], list[int]]:
    """The compact file's layers: every listed layer inside the model, plus the extraction layers.

    With ``--layers`` alone (no feature list) these are just the extraction layers.

    Returns:
        The layers (ascending), and the listed layers left out because the model lacks them.
    """
    listed = set(best_layers.listed_layers)
    outside = sorted(layer for layer in listed if not 0 <= layer < n_layers)
    return tuple(sorted((listed - set(outside)) | set(best_layers.extraction_layers))), outside


def _todo(
    tasks: Sequence[ReplayTask],
    *,
    folder: Path,
    layers: Sequence[int],
    shape: ModelShape,
    site: HookSite,
    fmt: ActivationFormat,
    rows: Rows,
    vector_layers: Sequence[int],
    overwrite: bool,
) -> tuple[list[ReplayTask], list[ReplayTask]]:
    """Tasks whose per-task files need writing, and tasks that need only their compact row."""
    if overwrite:
        return list(tasks), []
    todo, vectors_only = [], []
    for task in tasks:
        stored = stored_last_vectors(folder, task, layers, d_model=shape.d_model, site=site, fmt=fmt)
        if stored is None:
            todo.append(task)
        elif task.task_id not in rows or not row_matches(rows[task.task_id], vector_layers, stored):
            vectors_only.append(task)
    return todo, vectors_only


def _settings(
    *,
    spec: ModelSpec,
    shape: ModelShape,
    site: HookSite,
    fmt: ActivationFormat,
    best_layers: BestLayers,
    plan: CapturePlan,
    outside: list[int],
    gen_meta: dict[str, Any],
    generations_path: Path,
    tasks: Sequence[ReplayTask],
    batch_size: int,
) -> dict[str, Any]:
    """The metadata keys that describe what is replayed and how (see data/README.md)."""
    layers = list(best_layers.extraction_layers)
    return {
        keys.MODEL: spec.name,
        "model_revision": spec.revision,
        "generations_model": gen_meta["model"],
        keys.DTYPE: spec.dtype_name,
        keys.DEVICE: spec.device,
        keys.HOOK_POINT: site.value,
        keys.HOOK_POINT_EXPLANATION: site.explanation,
        keys.HOOK_NAMES: [site.hook_name(layer) for layer in layers],
        keys.LAYERS: layers,
        "n_layers": shape.n_layers,
        keys.D_MODEL: shape.d_model,
        keys.ACTIVATION_FORMAT: fmt.value,
        **best_layers.to_metadata(),
        keys.FEATURE_VECTORS: {
            keys.FEATURE_VECTORS_FILE_KEY: keys.FEATURE_VECTORS_FILE,
            keys.FEATURE_VECTORS_LAYERS: list(plan.last_layers),
            keys.FEATURE_VECTORS_N_TASKS: len(tasks),
            "listed_layers": list(best_layers.listed_layers),
            "listed_layers_outside_model": outside,
        },
        "forward_through_layer": plan.stop_at - 1,
        "generations_file": str(generations_path),
        "generations_sha256": sha256_file(generations_path),
        "batch_size": batch_size,
        keys.N_TASKS: len(tasks),
        keys.N_TOKENS: sum(task.n_tokens for task in tasks),
    }


@dataclass
class _ReplayStats:
    n_tokens: int = 0
    wall_time_s: float = 0.0
    load_time_s: float = 0.0
    n_float16_overflow: int = 0

    @property
    def tokens_per_s(self) -> float | None:
        return self.n_tokens / self.wall_time_s if self.wall_time_s > 0 else None


def _replay(
    todo: Sequence[ReplayTask],
    vectors_only: Sequence[ReplayTask],
    *,
    spec: ModelSpec,
    shape: ModelShape,
    folder: Path,
    plan: CapturePlan,
    fmt: ActivationFormat,
    store: FeatureVectorStore,
    rows: Rows,
    batch_size: int,
    stats: _ReplayStats,
    show_progress: bool,
) -> None:
    """Forward ``todo`` and ``vectors_only`` in batches; write files, parts and ``rows``."""
    write_files = {task.task_id for task in todo}
    start = time.perf_counter()
    bridge = load_bridge(spec)
    stats.load_time_s = time.perf_counter() - start
    if (bridge.cfg.n_layers, bridge.cfg.d_model) != (shape.n_layers, shape.d_model):
        raise RuntimeError(f"{spec.name}: bridge has {bridge.cfg.n_layers} layers of width {bridge.cfg.d_model}, config says {shape}")
    try:
        start = time.perf_counter()
        everything = [*todo, *vectors_only]
        with tqdm(total=len(everything), desc="replay", unit="task", disable=not show_progress) as bar:
            for batch in make_batches(everything, batch_size):
                captures = capture_batch(bridge, batch, plan)
                # The compact rows first: a crash after them but before the per-task files
                # leaves the task unstored, so a rerun replays it and its row is renewed.
                store.add(
                    [task.task_id for task in batch.tasks],
                    np.stack([c.resid_pre for c in captures]),
                    np.stack([c.resid_post for c in captures]),
                )
                for task, capture in zip(batch.tasks, captures):
                    rows[task.task_id] = (capture.resid_pre, capture.resid_post)
                    if task.task_id not in write_files:
                        continue
                    remove_stale_files(folder, task, plan.sequence_layers, d_model=shape.d_model, site=plan.site, keep=fmt)
                    for layer in plan.sequence_layers:
                        stats.n_float16_overflow += write_task_layer(
                            folder, task, layer, sequence=capture.sequence[layer], last=capture.last(layer), site=plan.site, fmt=fmt
                        )
                del captures
                stats.n_tokens += batch.n_tokens
                stats.wall_time_s = time.perf_counter() - start
                bar.update(len(batch.tasks))
                bar.set_postfix(tok_s=f"{stats.tokens_per_s or 0:.0f}")
    finally:
        # Free the model before a verify pass loads its own copy.
        del bridge
        gc.collect()
        torch.cuda.empty_cache()  # a no-op unless this process initialized CUDA
    if stats.n_float16_overflow:
        log.warning(
            "%d activation values exceed the float16 range and are stored as inf in 'sequence' "
            "(arr_0 and the other last-prompt-token vectors are float32 and exact)",
            stats.n_float16_overflow,
        )


def _cumulative(previous: dict[str, Any] | None, stats: _ReplayStats) -> dict[str, Any]:
    """Throughput over every run that wrote the current files (resumed runs add up)."""
    tokens = stats.n_tokens + int((previous or {}).get("n_tokens_replayed") or 0)
    wall = stats.wall_time_s + float((previous or {}).get(keys.WALL_TIME_S) or 0.0)
    overflow = stats.n_float16_overflow + int((previous or {}).get("n_float16_overflow") or 0)
    return {
        "n_tokens_replayed": tokens,
        keys.WALL_TIME_S: wall,
        keys.TOKENS_PER_S: tokens / wall if wall > 0 else None,
        "n_float16_overflow": overflow,
    }


def _choice(enum: type, value: Any, option: str) -> Any:
    try:
        return enum(value)
    except ValueError:
        raise InputError(f"{option} {value}: choose one of {', '.join(e.value for e in enum)}") from None


def _check_lengths(tasks: Sequence[ReplayTask], shape: ModelShape, model: str) -> None:
    if shape.max_positions is None:
        return
    too_long = [t.task_id for t in tasks if t.n_tokens > shape.max_positions]
    if too_long:
        raise InputError(
            f"task(s) {too_long[:10]} are longer than the {shape.max_positions} positions of model {model}; "
            "were the generations made with another model?"
        )


def _check_same_settings(previous: dict[str, Any], spec: ModelSpec, site: HookSite, path: Path) -> None:
    now = {keys.MODEL: spec.name, keys.DTYPE: spec.dtype_name, keys.HOOK_POINT: site.value}
    for key in SETTING_KEYS:
        old = previous.get(key)
        same = same_model(str(old), now[key]) if key == keys.MODEL else old == now[key]
        if old is None or same:
            continue
        if key == keys.HOOK_POINT:
            raise InputError(
                f"{path}: existing activations were made with hook_point={old}, not {now[key]}; pass --overwrite "
                f"to redo them at {now[key]}, or --hook-point {old} to keep {old} (the default is now resid_pre, "
                "the earlier phases' site; see README 'Joining the earlier phases')"
            )
        raise InputError(
            f"{path}: existing activations were made with {key}={old}, not {now[key]}; "
            "pass --overwrite to redo them, or another --output-dir"
        )
