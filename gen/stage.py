"""The generate stage: problems parquet in, ``generations.parquet`` out (``run(GenerateConfig(...))``).

Plan the run (:mod:`gen.plan`) -> under the completion record (which refuses output made with
other settings, and locks the folder) open the store and check the stored rows came from these
prompts and this model -> build the engine only when work is left -> stream every pending
prompt through it, committing as completions finish (:mod:`gen.stream`) -> write the metadata
(:mod:`gen.metadata`). A crashed run resumes from its commits.
"""

from __future__ import annotations

import functools
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from artifacts.errors import InputError
from artifacts.records import stage_run
from artifacts.schema import generations as keys
from gen.config import CHUNK_SIZE_DEPRECATION, EMBEDDED, RAY, GenerateConfig
from gen.engine import Engine, EngineConfig, EngineFactory
from gen.metadata import MetadataWriter, fixed_fields, run_info
from gen.plan import Plan, plan
from gen.ray_engine import DEFAULT_BATCH_SIZE, disconnect
from gen.store import GenerationStore
from gen.stream import PromptTask, StreamStats, run_stream


@dataclass(frozen=True)
class GenerateResult:
    """What one :func:`run` did (``metadata`` is the file's content)."""

    parquet_path: Path
    metadata_path: Path
    n_selected: int
    n_generated: int
    n_skipped: int
    n_excluded: int
    n_completion_tokens: int
    engine_load_time_s: float
    generation_time_s: float
    wall_time_s: float
    metadata: dict[str, Any]
    n_commits: int = 0
    max_num_seqs: int | None = None

    def summary(self) -> str:
        if self.n_generated == 0 and self.n_skipped:
            return f"nothing to do: all {self.n_skipped} selected problems are already in {self.parquet_path}"
        seqs = f", at most {self.max_num_seqs} at once" if self.max_num_seqs else ""
        # Tokens per engine second: first submission to last finish, engine start excluded.
        tokens_per_s = self.n_completion_tokens / self.generation_time_s if self.generation_time_s else 0.0
        return (
            f"problems {self.n_generated} generated, {self.n_skipped} already done, {self.n_excluded} excluded | "
            f"tokens {self.n_completion_tokens} | wall {self.wall_time_s:.1f}s "
            f"(engine start {self.engine_load_time_s:.1f}s, generation {self.generation_time_s:.1f}s{seqs}) | "
            f"{tokens_per_s:.1f} tok/s -> {self.parquet_path}"
        )


def run(config: GenerateConfig, *, engine_factory: EngineFactory | None = None,
        progress: bool = True) -> GenerateResult:
    """Greedy completions for the selected problems, streamed and committed as they finish; resumable.

    Args:
        config: the stage's settings.
        engine_factory: builds the engine [default: :func:`build_engine` for ``config``'s backend];
            called once, and only when work is left.
        progress: show a progress bar.

    Raises:
        InputError: bad options, missing problems or model, vLLM (or, for the Ray backend,
            Ray) missing, or earlier output made with other settings, prompts or model.
    """
    wall_start = time.perf_counter()
    if config.chunk_size is not None:
        print(CHUNK_SIZE_DEPRECATION.format(value=config.chunk_size), file=sys.stderr)
    factory = engine_factory or default_factory(config)
    try:
        work = plan(config)  # bad input fails here, before the record or the folder is touched
        with stage_run(config, overwrite=config.overwrite, resumes=True):
            store = GenerationStore(config.folder)
            previous = store.open()
            check_same_prompts(store, work.tasks)
            check_same_model(store, previous, work)
            pending = [t for t in work.tasks if t.task_id not in store.done_ids]
            if not pending and previous is not None and store.parquet_path.is_file():
                # Every selected task is stored already: touch nothing, start no engine.
                return GenerateResult(
                    store.parquet_path, store.metadata_path, n_selected=len(work.rows), n_generated=0,
                    n_skipped=len(work.tasks), n_excluded=len(work.excluded), n_completion_tokens=0,
                    engine_load_time_s=0.0, generation_time_s=0.0, wall_time_s=time.perf_counter() - wall_start,
                    metadata=previous,
                )
            return generate(config, work, store, previous, pending, factory, wall_start=wall_start, progress=progress)
    finally:
        disconnect()  # a Ray cluster joined to find its device, when no engine was left to close it


def build_engine(config: EngineConfig, *, data_parallel_size: int = 1, device: str = "cpu", backend: str = EMBEDDED,
                 ray_batch_size: int = DEFAULT_BATCH_SIZE) -> Engine:
    """A :class:`gen.vllm_engine.VllmEngine`, or for ``--backend ray`` or several replicas a
    :class:`gen.ray_engine.RayEngine` (Ray Data batches of ``ray_batch_size`` rows)."""
    if backend == RAY or data_parallel_size > 1:
        from gen.ray_engine import RayEngine

        return RayEngine(config, data_parallel_size=data_parallel_size, device=device, batch_size=ray_batch_size)
    from gen.vllm_engine import VllmEngine

    return VllmEngine(config)


def default_factory(config: GenerateConfig) -> EngineFactory:
    """:func:`build_engine` for ``config``'s backend, once what it needs is installed.

    Ray replicas need Ray here, and vLLM here only on a local Ray (a cluster's nodes bring their own).
    """
    from gen.ray_engine import cluster_address, require_ray
    from gen.vllm_engine import require_vllm

    if config.uses_ray:
        require_ray()
    if not config.uses_ray or cluster_address() is None:
        require_vllm()
    # Rows come back a Ray Data batch at a time: no batch larger than a commit.
    batch = min(config.commits_every, DEFAULT_BATCH_SIZE)
    return functools.partial(build_engine, backend=config.backend, ray_batch_size=batch)


def check_same_prompts(store: GenerationStore, tasks: list[PromptTask]) -> None:
    """Stored rows must have been made from the same prompt ids (a changed problems file or tokenizer would not)."""
    table = store.table
    stored = dict(zip(table.column(keys.COL_TASK_ID).to_pylist(), table.column(keys.COL_PROMPT_TOKEN_IDS).to_pylist()))
    changed = [t.task_id for t in tasks if t.task_id in stored and tuple(stored[t.task_id]) != t.token_ids]
    if changed:
        raise InputError(
            f"{store.output_dir}: stored prompts of task(s) {changed[:10]} differ from this run's "
            "(problems file or tokenizer changed); pass --overwrite to regenerate"
        )


def check_same_model(store: GenerationStore, previous: dict[str, Any] | None, work: Plan) -> None:
    """Stored rows must come from the model the settings resolve to now.

    The completion record compares the settings as given; the same ``--model`` folder with other
    weights, a moved hub branch, or a default dtype on another device resolve differently, and
    only the metadata knows what they resolved to then.
    """
    if store.table.num_rows == 0 or previous is None:
        return
    diff = [f"{k}: {previous.get(k)!r} -> {v!r}" for k, v in work.resolved.identity().items()
            if k in previous and previous[k] != v]
    if diff:
        raise InputError(
            f"{store.parquet_path}: made with another model or engine setup ({'; '.join(diff)}); "
            "pass --overwrite to replace it or choose another --output-dir"
        )


def generate(config: GenerateConfig, work: Plan, store: GenerationStore, previous: dict[str, Any] | None,
             pending: list[PromptTask], factory: EngineFactory, *, wall_start: float, progress: bool) -> GenerateResult:
    """Stream ``pending`` through one engine (built only when there is work) and record it."""
    writer = MetadataWriter(store, fixed_fields(config, work, run_info(config, work), previous), wall_start)
    stats = StreamStats()
    if pending:
        load_start = time.perf_counter()
        r = work.resolved
        engine = factory(r.engine, data_parallel_size=config.data_parallel_size, device=r.device)
        writer.engine_started(time.perf_counter() - load_start, engine)
        try:
            stats = run_stream(
                tasks=pending, engine=engine, store=store,
                decode=lambda ids: r.tokenizer.decode(ids, skip_special_tokens=True),
                commit_every=config.commits_every, commit_seconds=config.commit_seconds, on_commit=writer,
                progress=progress, total=len(work.tasks), initial=len(work.tasks) - len(pending),
            )
        finally:
            engine.close()
    else:  # every selected prompt overflowed: an empty file that lists them as excluded
        store.commit([])
    metadata = writer(stats, complete=store.done_ids >= {t.task_id for t in work.tasks})
    info = writer.info
    return GenerateResult(
        store.parquet_path, store.metadata_path, n_selected=len(work.rows), n_generated=stats.n_tasks,
        n_skipped=len(work.tasks) - len(pending), n_excluded=len(work.excluded),
        n_completion_tokens=stats.n_completion_tokens, engine_load_time_s=info["engine_load_time_s"],
        generation_time_s=info[keys.GENERATION_TIME_S], wall_time_s=info[keys.WALL_TIME_S], metadata=metadata,
        n_commits=stats.n_commits, max_num_seqs=info["max_num_seqs"],
    )
