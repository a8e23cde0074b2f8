"""The front door of the replay stage: generations in, activation files and metadata out.

Work is per batch of tasks; each task's files are written atomically as soon as its batch
finishes, and nothing is kept between batches, so memory stays flat over any number of
tasks and a crash loses at most the batch in flight. A rerun skips tasks whose files exist,
load and hold the same token ids.
"""

from __future__ import annotations

import gc
import importlib.metadata
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import torch
from tqdm.auto import tqdm

from artifacts.errors import InputError
from artifacts.files import read_json, sha256_file, write_json
from artifacts.layout import (
    ACTIVATIONS_METADATA_FILE,
    ACTIVATIONS_SUBDIR,
    GENERATIONS_METADATA_FILE,
    TASK_ACTIVATIONS_SUBDIR,
)
from features.best_layers import BestLayers, check_layers
from replay.capture import capture_batch, make_batches
from replay.generations import ReplayTask, read_generations, read_generations_metadata
from replay.hook_sites import DEFAULT_HOOK_SITE, HookSite
from replay.model import ModelShape, ModelSpec, load_bridge, model_spec, read_model_shape, same_model
from replay.store import is_stored, write_task_layer
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
SETTING_KEYS = ("model", "dtype", "hook_point")


@dataclass(frozen=True)
class ReplayResult:
    """What one call did (``metadata`` is what was written to ``metadata_path``)."""

    activations_dir: Path
    metadata_path: Path
    n_tasks: int
    n_replayed: int
    n_skipped: int
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
    batch_size: int | None = None,
    verify: int = 0,
    overwrite: bool = False,
    show_progress: bool = True,
) -> ReplayResult:
    """Replay every generation and store residual activations at the best layers.

    Args:
        generations_path: ``generations.parquet``; ``generations_metadata.json`` is read
            from the same folder.
        output_dir: the stage folder; files go to ``output_dir/activations/``.
        best_layers: the layers to store (``features.best_layers.resolve_layers``).
        model: model name or folder; default the generations' model (another one warns).
        dtype: ``float32``, ``bfloat16`` or ``float16``; default the generations' dtype.
        device: ``auto``, ``cpu`` or ``cuda``.
        hook_point: ``resid_post`` (output of block L) or ``resid_pre`` (its input).
        batch_size: sequences per forward, grouped by length; default 8 for float32 on a
            GPU, else 1 (see :func:`default_batch_size`).
        verify: check this many sampled tasks against Hugging Face (0: no check).
        overwrite: redo tasks whose files exist, and allow changing model, dtype or hook point.
        show_progress: show tqdm bars.

    Raises:
        InputError: bad files, layers outside the model, or settings that differ from the
            existing activations without ``overwrite``. Raised before any model weights load.
    """
    site = HookSite(hook_point)
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

    activations_dir = Path(output_dir) / ACTIVATIONS_SUBDIR
    folder = activations_dir / TASK_ACTIVATIONS_SUBDIR
    metadata_path = activations_dir / ACTIVATIONS_METADATA_FILE
    previous = _previous_metadata(metadata_path)
    if previous is not None and not overwrite:
        _check_same_settings(previous, spec, site, metadata_path)
    else:
        previous = None  # --overwrite starts the bookkeeping afresh
    todo = list(tasks) if overwrite else [t for t in tasks if not is_stored(folder, t, layers, shape.d_model)]

    settings = _settings(
        spec=spec, shape=shape, site=site, best_layers=best_layers, gen_meta=gen_meta,
        generations_path=generations_path, tasks=tasks, batch_size=batch_size,
    )
    stats = _ReplayStats()
    if todo:
        # Settings go to disk before the work, so a crashed run's files can be checked on resume.
        write_json(metadata_path, {**(previous or {}), **settings, "complete": False})
        _replay(todo, spec=spec, shape=shape, folder=folder, layers=layers, site=site, batch_size=batch_size, stats=stats, show_progress=show_progress)

    verify_result = None
    # An earlier check still holds when this run changed no file; a rerun of a finished
    # stage therefore does not reload the model just to verify the same files again.
    earlier = previous.get("verify") if previous and not todo else None
    if verify and not (earlier and earlier.get("n_tasks", 0) >= verify):
        verify_result = verify_activations(
            spec=spec, tasks=tasks, folder=folder, layers=layers, site=site, n=verify, show_progress=show_progress
        )
        verify_meta = verify_result.to_metadata()
    else:
        verify_meta = earlier

    metadata = {
        **settings,
        **_cumulative(previous, stats),
        "n_replayed": len(todo),
        "n_skipped": len(tasks) - len(todo),
        "load_time_s": stats.load_time_s,
        "verify": verify_meta,
        "transformer_lens_version": _version("transformer-lens"),
        "transformers_version": _version("transformers"),
        "torch_version": torch.__version__,
        "creation_timestamp": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "complete": True,
    }
    write_json(metadata_path, metadata)
    return ReplayResult(
        activations_dir=activations_dir,
        metadata_path=metadata_path,
        n_tasks=len(tasks),
        n_replayed=len(todo),
        n_skipped=len(tasks) - len(todo),
        n_tokens_replayed=stats.n_tokens,
        wall_time_s=stats.wall_time_s,
        tokens_per_s=stats.tokens_per_s,
        verify=verify_result,
        metadata=metadata,
    )


def _settings(
    *,
    spec: ModelSpec,
    shape: ModelShape,
    site: HookSite,
    best_layers: BestLayers,
    gen_meta: dict[str, Any],
    generations_path: Path,
    tasks: Sequence[ReplayTask],
    batch_size: int,
) -> dict[str, Any]:
    """The metadata keys that describe what is replayed and how (see data/README.md)."""
    layers = list(best_layers.extraction_layers)
    return {
        "model": spec.name,
        "model_revision": spec.revision,
        "generations_model": gen_meta["model"],
        "dtype": spec.dtype_name,
        "device": spec.device,
        "hook_point": site.value,
        "hook_names": [site.hook_name(layer) for layer in layers],
        "layers": layers,
        "n_layers": shape.n_layers,
        "d_model": shape.d_model,
        **best_layers.to_metadata(),
        "generations_file": str(generations_path),
        "generations_sha256": sha256_file(generations_path),
        "batch_size": batch_size,
        "n_tasks": len(tasks),
        "n_tokens": sum(task.n_tokens for task in tasks),
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
    *,
    spec: ModelSpec,
    shape: ModelShape,
    folder: Path,
    layers: Sequence[int],
    site: HookSite,
    batch_size: int,
    stats: _ReplayStats,
    show_progress: bool,
) -> None:
    start = time.perf_counter()
    bridge = load_bridge(spec)
    stats.load_time_s = time.perf_counter() - start
    if (bridge.cfg.n_layers, bridge.cfg.d_model) != (shape.n_layers, shape.d_model):
        raise RuntimeError(f"{spec.name}: bridge has {bridge.cfg.n_layers} layers of width {bridge.cfg.d_model}, config says {shape}")
    try:
        start = time.perf_counter()
        with tqdm(total=len(todo), desc="replay", unit="task", disable=not show_progress) as bar:
            for batch in make_batches(todo, batch_size):
                acts = capture_batch(bridge, batch, layers=layers, site=site, n_layers=shape.n_layers)
                for task, by_layer in zip(batch.tasks, acts):
                    for layer in layers:
                        stats.n_float16_overflow += write_task_layer(folder, task, layer, by_layer[layer])
                del acts
                stats.n_tokens += batch.n_tokens
                stats.wall_time_s = time.perf_counter() - start
                bar.update(len(batch.tasks))
                bar.set_postfix(tok_s=f"{stats.tokens_per_s or 0:.0f}")
    finally:
        # Free the model before a verify pass loads its own copy.
        del bridge
        gc.collect()
        if torch.cuda.is_available():
            torch.cuda.empty_cache()
    if stats.n_float16_overflow:
        log.warning(
            "%d activation values exceed the float16 range and are stored as inf in 'sequence' "
            "(arr_0 is float32 and exact)",
            stats.n_float16_overflow,
        )


def _cumulative(previous: dict[str, Any] | None, stats: _ReplayStats) -> dict[str, Any]:
    """Throughput over every run that wrote the current files (resumed runs add up)."""
    tokens = stats.n_tokens + int((previous or {}).get("n_tokens_replayed") or 0)
    wall = stats.wall_time_s + float((previous or {}).get("wall_time_s") or 0.0)
    overflow = stats.n_float16_overflow + int((previous or {}).get("n_float16_overflow") or 0)
    return {
        "n_tokens_replayed": tokens,
        "wall_time_s": wall,
        "tokens_per_s": tokens / wall if wall > 0 else None,
        "n_float16_overflow": overflow,
    }


def _check_lengths(tasks: Sequence[ReplayTask], shape: ModelShape, model: str) -> None:
    if shape.max_positions is None:
        return
    too_long = [t.task_id for t in tasks if t.n_tokens > shape.max_positions]
    if too_long:
        raise InputError(
            f"task(s) {too_long[:10]} are longer than the {shape.max_positions} positions of model {model}; "
            "were the generations made with another model?"
        )


def _previous_metadata(path: Path) -> dict[str, Any] | None:
    try:
        meta = read_json(path)
    except FileNotFoundError:
        return None
    except ValueError as exc:
        raise InputError(f"{path}: not valid JSON ({exc}); delete it or pass --overwrite") from exc
    return meta if isinstance(meta, dict) else None


def _check_same_settings(previous: dict[str, Any], spec: ModelSpec, site: HookSite, path: Path) -> None:
    now = {"model": spec.name, "dtype": spec.dtype_name, "hook_point": site.value}
    for key in SETTING_KEYS:
        old = previous.get(key)
        same = same_model(str(old), now[key]) if key == "model" else old == now[key]
        if old is not None and not same:
            raise InputError(
                f"{path}: existing activations were made with {key}={old}, not {now[key]}; "
                "pass --overwrite to redo them, or another --output-dir"
            )


def _version(package: str) -> str | None:
    try:
        return importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        return None
