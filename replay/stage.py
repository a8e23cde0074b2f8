"""The replay stage: generations in, activation files and ``activations_metadata.json`` out.

``run(config)`` reads as its steps: :func:`prepare` checks every input before any weights
load; under the stage's completion record, :func:`find_work` lists the tasks to replay,
:func:`replay_tasks` runs them in batches and writes each task's files as its batch finishes,
the compact feature-layer file is merged, :func:`verify_step` checks a sample against Hugging
Face when asked, and :func:`write_metadata` writes the metadata (unless a finished run's
metadata already describes the files: a rerun with nothing to do changes no file).

The completion record refuses a folder made with other settings, so a rerun only has to find
the tasks whose files are missing or hold other tokens (:func:`replay.store.is_stored`): a
crash loses at most the batch in flight.
"""

from __future__ import annotations

import gc
import logging
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm.auto import tqdm

from artifacts.errors import InputError
from artifacts.feature_list import BestLayers, check_layers
from artifacts.files import read_optional_json, sha256_file, write_json
from artifacts.layout import ACTIVATIONS_METADATA_FILE
from artifacts.records import COMPLETE, read_record, stage_run
from artifacts.schema import activations as keys
from artifacts.schema import generations as gen_keys
from artifacts.versions import package_version
from replay.capture import Batch, capture_batch, make_batches
from replay.config import ReplayConfig
from replay.feature_vectors import FeatureVectorStore, Rows
from replay.generations import ReplayTask, read_generations, read_generations_metadata
from replay.model import ModelShape, ModelSpec, load_bridge, model_spec, read_model_shape, same_model
from replay.store import is_stored, suffixes, write_task_layer
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


@dataclass(frozen=True, eq=False)
class Job:
    """Everything one run works on, read and checked before any weights load."""

    config: ReplayConfig
    tasks: list[ReplayTask]
    generations_meta: dict[str, Any]
    spec: ModelSpec
    shape: ModelShape
    best_layers: BestLayers
    layers: tuple[int, ...]  # the extraction layers: per-task files, every position at the hook point
    vector_layers: tuple[int, ...]  # the compact file's: listed layers inside the model, plus `layers`
    outside: list[int]  # listed layers the model lacks (left out of the compact file)
    batch_size: int

    @property
    def site(self) -> str:
        return self.config.hook_point

    @property
    def folder(self) -> Path:
        return self.config.task_activations_dir

    @property
    def metadata_path(self) -> Path:
        return self.config.activations_dir / ACTIVATIONS_METADATA_FILE


@dataclass(eq=False)
class Work:
    """What this run has to do (tasks to replay, and tasks replayed for their compact row only)
    and what it has done so far."""

    todo: list[ReplayTask]
    todo_ids: set[int]
    vectors_only: list[ReplayTask]
    rows: Rows  # task id -> compact row, filled as batches finish
    rewrite: bool  # the compact file must be (re)written
    n_tokens: int = 0
    wall_time_s: float = 0.0
    load_time_s: float = 0.0
    n_float16_overflow: int = 0

    @property
    def tokens_per_s(self) -> float | None:
        return self.n_tokens / self.wall_time_s if self.wall_time_s > 0 else None


@dataclass(frozen=True)
class ReplayResult:
    """What one run did (``metadata`` is what was written to ``metadata_path``).

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
    metadata: dict[str, Any] = field(repr=False)

    def summary(self) -> str:
        """What ``replay-activations`` prints."""
        meta = self.metadata
        speed = f"{self.tokens_per_s:.0f} tokens/s" if self.tokens_per_s else "nothing to replay"
        filled = (f", {self.n_feature_vectors_replayed} of them run again for the feature-layer vectors only"
                  if self.n_feature_vectors_replayed else "")
        lines = [
            f"replayed {self.n_replayed} of {self.n_tasks} tasks ({self.n_skipped} already stored{filled}), "
            f"{self.n_tokens_replayed} tokens in {self.wall_time_s:.1f}s ({speed}); "
            f"{meta[keys.HOOK_POINT]} layers {meta[keys.LAYERS]} ({meta[keys.ACTIVATION_FORMAT]}), "
            f"{meta[keys.DTYPE]} on {meta[keys.DEVICE]} -> {self.activations_dir}; feature-layer vectors of layers "
            f"{meta[keys.FEATURE_VECTORS][keys.FEATURE_VECTORS_LAYERS]} -> {self.feature_vectors_path.name}"
        ]
        if self.verify is not None:
            v = self.verify
            fidelity = (f"{v.fidelity:.4f} ({v.n_argmax_matches}/{v.n_completion_positions})"
                        if v.fidelity is not None else "n/a (no completion tokens)")
            sequence = f", {v.sequence_max_rel_error:.2e} (sequence, float16)" if v.sequence_max_rel_error is not None else ""
            lines.append(
                f"verify {v.n_tasks} tasks vs Hugging Face: max relative error {v.max_rel_error:.2e} "
                f"({meta[keys.HOOK_POINT]}, float32), resid_pre {v.resid_pre_max_rel_error:.2e}, "
                f"resid_post {v.resid_post_max_rel_error:.2e}{sequence}; replay fidelity {fidelity}"
            )
        return "\n".join(lines)


def run(config: ReplayConfig, *, show_progress: bool = True) -> ReplayResult:
    """Replay every generation; store residual activations at the best layers and the
    last-prompt-token vectors of every listed layer (see the module docstring).

    Raises:
        InputError: bad files, layers outside the model, or (from the completion record) an
            earlier output made with other settings without ``overwrite``. Raised before any
            model weights load.
    """
    job = prepare(config)
    finished_before, prior = read_earlier(job)
    with stage_run(config, overwrite=config.overwrite, resumes=True):
        store = FeatureVectorStore(config.activations_dir, job.vector_layers, job.shape.d_model)
        work = find_work(job, store)
        replay_tasks(job, work, store, show_progress=show_progress)
        if work.rewrite:
            store.finish(work.rows, [t.task_id for t in job.tasks])
        files_unchanged = finished_before and not work.rewrite  # as the earlier, finished run left them
        verified, verify_meta = verify_step(job, prior if files_unchanged else None, show_progress=show_progress)
        if files_unchanged and verified is None and all(prior.get(k) == v for k, v in _describe(job).items()):
            metadata = prior  # left untouched, so the stages that read it stay current
        else:
            metadata = write_metadata(job, work, prior, verify_meta)
    return ReplayResult(
        activations_dir=config.activations_dir, metadata_path=job.metadata_path, feature_vectors_path=store.path,
        n_tasks=len(job.tasks), n_replayed=len(work.todo), n_skipped=len(job.tasks) - len(work.todo),
        n_feature_vectors_replayed=len(work.vectors_only), n_tokens_replayed=work.n_tokens,
        wall_time_s=work.wall_time_s, tokens_per_s=work.tokens_per_s, verify=verified, metadata=metadata,
    )


def prepare(config: ReplayConfig) -> Job:
    """Read the generations, the feature list and the model's config; check layers and lengths."""
    best = config.best_layers()
    tasks = read_generations(config.generations)
    generations_meta = read_generations_metadata(config.generations_metadata)
    if not tasks:
        raise InputError(f"{config.generations}: no generations to replay")
    spec = model_spec(generations_meta, model=config.model, dtype=config.dtype, device=config.device)
    shape = read_model_shape(spec)
    layers = tuple(best.extraction_layers)
    check_layers(layers, shape.n_layers, spec.name)
    too_long = [t.task_id for t in tasks if shape.max_positions is not None and t.n_tokens > shape.max_positions]
    if too_long:
        raise InputError(f"task(s) {too_long[:10]} are longer than the {shape.max_positions} positions of model "
                         f"{spec.name}; were the generations made with another model?")
    # With --layers alone (no feature list) the compact file holds just the extraction layers.
    listed = set(best.listed_layers)
    outside = sorted(layer for layer in listed if not 0 <= layer < shape.n_layers)
    if outside:
        log.warning("the feature list %s names layer(s) %s outside model %s (%d layers); they are left out of %s",
                    best.source, outside, spec.name, shape.n_layers, keys.FEATURE_VECTORS_FILE)
    return Job(config=config, tasks=tasks, generations_meta=generations_meta, spec=spec, shape=shape, best_layers=best,
               layers=layers, vector_layers=tuple(sorted((listed - set(outside)) | set(layers))), outside=outside,
               batch_size=config.batch_size or default_batch_size(spec))


def read_earlier(job: Job) -> tuple[bool, dict[str, Any]]:
    """Whether the run whose files this one resumes finished, and the metadata it left
    (``(False, {})`` when this run starts afresh: no completion record, or ``--overwrite``).

    Raises:
        InputError: the files were made with another model or dtype that the settings left to
            default: the completion record holds the settings as given, not what they resolved
            to from the generations, and tasks whose tokens did not change would keep them.
    """
    record = None if job.config.overwrite else read_record(job.config)
    if not record:
        return False, {}
    prior = read_optional_json(job.metadata_path) or {}
    resolved = {keys.MODEL: (job.config.model, job.spec.name), keys.DTYPE: (job.config.dtype, job.spec.dtype_name)}
    for key, (given, value) in resolved.items():
        old = prior.get(key)
        if given is None and old is not None and not (same_model(str(old), value) if key == keys.MODEL else old == value):
            raise InputError(
                f"{job.metadata_path}: existing activations were made with {key}={old}, not {value} (the "
                "generations changed); pass --overwrite to redo them, or another --output-dir"
            )
    return bool(record.get(COMPLETE)), prior


def find_work(job: Job, store: FeatureVectorStore) -> Work:
    """Tasks without current files, and stored tasks without a compact row of this run's layers."""
    rows, clean = store.load_rows()
    todo = [task for task in job.tasks if not is_stored(job.folder, task, job.layers, job.config.activation_format)]
    todo_ids = {task.task_id for task in todo}
    vectors_only = [task for task in job.tasks if task.task_id not in todo_ids and task.task_id not in rows]
    rewrite = bool(todo or vectors_only) or not clean or set(rows) != {task.task_id for task in job.tasks}
    return Work(todo=todo, todo_ids=todo_ids, vectors_only=vectors_only, rows=rows, rewrite=rewrite)


def replay_tasks(job: Job, work: Work, store: FeatureVectorStore, *, show_progress: bool) -> None:
    """Forward the work in batches; write each task's files and compact row as its batch finishes."""
    everything = [*work.todo, *work.vectors_only]
    if not everything:
        return
    start = time.perf_counter()
    bridge = load_bridge(job.spec)
    work.load_time_s = time.perf_counter() - start
    try:
        start = time.perf_counter()
        with tqdm(total=len(everything), desc="replay", unit="task", disable=not show_progress) as bar:
            for batch in make_batches(everything, job.batch_size):
                _replay_batch(job, work, store, bridge, batch)
                work.n_tokens += sum(task.n_tokens for task in batch.tasks)
                work.wall_time_s = time.perf_counter() - start
                bar.update(len(batch.tasks))
                bar.set_postfix(tok_s=f"{work.tokens_per_s or 0:.0f}")
    finally:
        # Free the model before a verify pass loads its own copy.
        del bridge
        gc.collect()
        torch.cuda.empty_cache()  # a no-op unless this process initialized CUDA
    if work.n_float16_overflow:
        log.warning("%d activation values exceed the float16 range and are stored as inf in 'sequence' "
                    "(arr_0 and the other last-prompt-token vectors are float32 and exact)", work.n_float16_overflow)


def _replay_batch(job: Job, work: Work, store: FeatureVectorStore, bridge: Any, batch: Batch) -> None:
    captures = capture_batch(bridge, batch, site=job.site, sequence_layers=job.layers, last_layers=job.vector_layers)
    # The compact rows first: a crash after them but before the per-task files leaves the
    # task unstored, so a rerun replays it and its row is renewed.
    pre, post = (np.stack([c.last[site] for c in captures]) for site in keys.HOOK_POINTS)
    store.add([task.task_id for task in batch.tasks], pre, post)
    for task, capture in zip(batch.tasks, captures):
        work.rows[task.task_id] = (capture.last[keys.RESID_PRE], capture.last[keys.RESID_POST])
        if task.task_id not in work.todo_ids:
            continue
        for layer in job.layers:
            row = job.vector_layers.index(layer)
            work.n_float16_overflow += write_task_layer(
                job.folder, task, layer, sequence=capture.sequence[layer], site=job.site,
                last={site: capture.last[site][row] for site in keys.HOOK_POINTS}, fmt=job.config.activation_format,
            )


def verify_step(job: Job, unchanged: dict[str, Any] | None, *,
                show_progress: bool) -> tuple[VerifyResult | None, dict[str, Any] | None]:
    """``--verify N``: check N sampled tasks against Hugging Face, unless an equal or larger check
    of the same files is on record (in ``unchanged``: the metadata of the finished run that wrote
    these files, when this run changed none of them).

    Returns:
        The new check (None when none ran) and the ``verify`` block to record.
    """
    earlier = keys.verify_block(unchanged)
    n = job.config.verify
    if not n or (earlier is not None and earlier.get(keys.VERIFY_N_TASKS, 0) >= n):
        return None, earlier
    result = verify_activations(
        spec=job.spec, tasks=job.tasks, folder=job.folder, layers=job.layers, site=job.site,
        fmt=job.config.activation_format, feature_vectors_path=job.config.activations_dir / keys.FEATURE_VECTORS_FILE,
        n=n, show_progress=show_progress,
    )
    return result, result.to_metadata()


def write_metadata(job: Job, work: Work, prior: dict[str, Any], verify_meta: dict[str, Any] | None) -> dict[str, Any]:
    """Write ``activations_metadata.json`` (keys in data/README.md) and return it.

    Throughput adds up over every run that wrote the current files (``prior``: resumed runs).
    """
    tokens = work.n_tokens + int(prior.get("n_tokens_replayed") or 0)
    wall = work.wall_time_s + float(prior.get(keys.WALL_TIME_S) or 0.0)
    metadata = {
        **_describe(job),
        "n_tokens_replayed": tokens,
        keys.WALL_TIME_S: wall,
        keys.TOKENS_PER_S: tokens / wall if wall > 0 else None,
        "n_float16_overflow": work.n_float16_overflow + int(prior.get("n_float16_overflow") or 0),
        "n_replayed": len(work.todo),
        "n_skipped": len(job.tasks) - len(work.todo),
        "n_feature_vectors_replayed": len(work.vectors_only),
        "load_time_s": work.load_time_s,
        keys.VERIFY: verify_meta,
        "transformer_lens" + keys.VERSION_SUFFIX: package_version("transformer-lens", "transformer_lens"),
        "transformers" + keys.VERSION_SUFFIX: package_version("transformers"),
        "torch" + keys.VERSION_SUFFIX: torch.__version__,
        "safetensors" + keys.VERSION_SUFFIX: (package_version("safetensors")
                                              if "safetensors" in suffixes(job.config.activation_format) else None),
        "creation_timestamp": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }
    write_json(job.metadata_path, metadata)
    return metadata


def _describe(job: Job) -> dict[str, Any]:
    """The metadata keys that describe what is replayed and how (counts and timings aside)."""
    best = job.best_layers
    return {
        keys.MODEL: job.spec.name,
        "model_revision": job.spec.revision,
        "generations_model": job.generations_meta[gen_keys.MODEL],
        keys.DTYPE: job.spec.dtype_name,
        keys.DEVICE: job.spec.device,
        keys.HOOK_POINT: job.site,
        keys.HOOK_POINT_EXPLANATION: keys.HOOK_POINT_EXPLANATIONS[job.site],
        keys.HOOK_NAMES: [keys.hook_name(job.site, layer) for layer in job.layers],
        keys.LAYERS: list(job.layers),
        "n_layers": job.shape.n_layers,
        keys.D_MODEL: job.shape.d_model,
        keys.ACTIVATION_FORMAT: job.config.activation_format,
        **best.to_metadata(),
        keys.FEATURE_VECTORS: {
            keys.FEATURE_VECTORS_FILE_KEY: keys.FEATURE_VECTORS_FILE,
            keys.FEATURE_VECTORS_LAYERS: list(job.vector_layers),
            keys.FEATURE_VECTORS_N_TASKS: len(job.tasks),
            "listed_layers": list(best.listed_layers),
            "listed_layers_outside_model": job.outside,
        },
        "forward_through_layer": max(job.vector_layers),
        "generations_file": str(job.config.generations),
        "generations_sha256": sha256_file(job.config.generations),
        "batch_size": job.batch_size,
        keys.N_TASKS: len(job.tasks),
        keys.N_TOKENS: sum(task.n_tokens for task in job.tasks),
    }
