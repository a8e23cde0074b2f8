"""The generate stage's front door: problems parquet in, ``generations.parquet`` out.

Flow: select rows -> render and tokenize prompts -> drop prompts that do not fit the
context (listed in the metadata) -> open the output folder (resume or refuse mixed
settings) -> build the engine only when work is left -> stream every pending prompt
through it, committing completions as they finish -> write the metadata.
"""

from __future__ import annotations

import fcntl
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pandas as pd

from artifacts.device import check_dtype, default_dtype, detect_device
from artifacts.errors import InputError
from artifacts.files import sha256_file
from artifacts.layout import DEFAULT_MODEL
from artifacts.schema import generations as keys
from gen.context import context_length
from gen.device_policy import apply_cpu_env_defaults, batch_invariant_support, default_enforce_eager, device_name
from gen.engine import EngineConfig, EngineFactory
from gen.model_source import ModelSource, resolve_model
from gen.stop_tokens import DEFAULT_STOP_POLICY, StopPolicy, stop_tokens
from gen.store import SETTINGS_KEYS, GenerationStore
from gen.stream import DEFAULT_COMMIT_EVERY, DEFAULT_COMMIT_SECONDS, PromptTask, StreamStats, run_stream
from gen.tokenize import prompt_token_ids
from gen.vllm_engine import require_vllm, vllm_version
from problems.prompts import DEFAULT_PROMPT_STYLE, PromptStyle, render_prompt
from problems.split import read_problems

DEFAULT_MAX_NEW_TOKENS = 2000
DEFAULT_SEED = 0
LOCK_FILE = ".generate.lock"


@dataclass(frozen=True)
class GenerateResult:
    """What one :func:`generate` call did (``metadata`` is the file's content)."""

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

    @property
    def tokens_per_s(self) -> float:
        """This call's generated tokens per engine second (first submission to last finish; start excluded)."""
        return self.n_completion_tokens / self.generation_time_s if self.generation_time_s else 0.0


def select_rows(problems: pd.DataFrame, *, start: int | None, end: int | None, limit: int | None) -> pd.DataFrame:
    """Rows ``start..end`` (inclusive, 0-indexed positions), then at most ``limit`` of them."""
    n = len(problems)
    lo = 0 if start is None else start
    hi = n - 1 if end is None else end
    if lo < 0 or (end is not None and end < 0):
        raise InputError(f"--start/--end {start}/{end}: row numbers are 0-indexed and cannot be negative")
    if lo >= n:
        raise InputError(f"--start {lo}: the problems file has only {n} rows (0..{n - 1})")
    if hi < lo:
        raise InputError(f"--start {lo} --end {hi}: the range is empty (--end is inclusive)")
    if limit is not None and limit < 1:
        raise InputError(f"--limit {limit}: must be at least 1")
    selected = problems.iloc[lo : hi + 1]
    return selected.iloc[:limit] if limit is not None else selected


def build_tasks(rows: pd.DataFrame, tokenizer: Any, style: PromptStyle) -> list[PromptTask]:
    """Render and tokenize every selected problem (see :mod:`gen.tokenize`)."""
    tasks = []
    for row in rows.itertuples(index=False):
        try:
            prompt = render_prompt(row.text, list(row.test_list), style, tokenizer)
        except ValueError as exc:  # chat style without a chat template
            raise InputError(f"--prompt-style {style.value}: {exc}") from exc
        tasks.append(PromptTask(int(row.task_id), prompt, tuple(prompt_token_ids(prompt, tokenizer, style))))
    return tasks


def split_overflow(tasks: list[PromptTask], max_model_len: int) -> tuple[list[PromptTask], list[dict[str, Any]]]:
    """Tasks that fit, and ``{task_id, reason}`` for prompts leaving no room to generate.

    vLLM rejects a prompt of ``max_model_len`` tokens or more (one slot must stay free for
    the first generated token); rejecting one request would fail the whole batch.
    """
    fits, excluded = [], []
    for task in tasks:
        if len(task.token_ids) >= max_model_len:
            excluded.append(
                {
                    "task_id": task.task_id,
                    "reason": f"prompt has {len(task.token_ids)} tokens; the context holds {max_model_len} "
                    "(raise --max-model-len if the model allows)",
                }
            )
        else:
            fits.append(task)
    return fits, excluded


@contextmanager
def output_lock(output_dir: Path) -> Iterator[None]:
    """Refuse a second generate process writing the same folder."""
    output_dir.mkdir(parents=True, exist_ok=True)
    with open(output_dir / LOCK_FILE, "w") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError as exc:
            raise InputError(f"{output_dir}: another generate run is writing here; wait for it or pick --output-dir") from exc
        yield


def generate(
    *,
    problems_path: str | Path,
    output_dir: str | Path,
    model: str = DEFAULT_MODEL,
    revision: str | None = None,
    start: int | None = None,
    end: int | None = None,
    limit: int | None = None,
    max_new_tokens: int = DEFAULT_MAX_NEW_TOKENS,
    prompt_style: PromptStyle | str = DEFAULT_PROMPT_STYLE,
    stop: StopPolicy | str = DEFAULT_STOP_POLICY,
    dtype: str | None = None,
    max_model_len: int | None = None,
    tensor_parallel_size: int = 1,
    data_parallel_size: int = 1,
    overwrite: bool = False,
    deterministic: bool = False,
    enforce_eager: bool | None = None,
    commit_every: int = DEFAULT_COMMIT_EVERY,
    commit_seconds: float = DEFAULT_COMMIT_SECONDS,
    seed: int = DEFAULT_SEED,
    progress: bool = True,
    engine_factory: EngineFactory | None = None,
) -> GenerateResult:
    """Greedy completions for the selected problems, streamed and committed as they finish; resumable.

    Args:
        problems_path: ``validation_mbpp.parquet`` from the split stage.
        output_dir: folder for ``generations.parquet`` and ``generations_metadata.json``.
        model: hub id or local checkpoint folder.
        revision: hub revision (branch, tag or commit).
        start, end: inclusive 0-indexed row range of the problems file.
        limit: at most this many problems (after ``start``).
        max_new_tokens: generation budget per problem.
        prompt_style: ``raw`` text, the model's ``chat`` template, or ``raw-double-assert``
            (the earlier phases' buggy prompt; see :mod:`problems.prompts`).
        stop: ``end-of-turn`` (every eos id of the generation config) or ``eos-only`` (the
            tokenizer's EOS alone, as the earlier phases; see :mod:`gen.stop_tokens`).
        dtype: ``float32``, ``bfloat16`` or ``float16``; default float32 on CPU, bfloat16 on GPU.
        max_model_len: context length given to vLLM; default the model's.
        tensor_parallel_size: GPUs per model replica (vLLM's tensor parallelism).
        data_parallel_size: model replicas fed from one queue (see :mod:`gen.replicas`).
        overwrite: discard earlier output in ``output_dir`` instead of resuming.
        deterministic: prefix caching off and vLLM batch-invariant mode where supported.
        enforce_eager: skip compilation and graph capture; default on CPU only (see
            :mod:`gen.device_policy`).
        commit_every: commit once this many completions are finished.
        commit_seconds: commit finished completions at least this often.
        seed: vLLM's seed (greedy decoding does not sample; recorded for completeness).
        progress: show a progress bar.
        engine_factory: builds the engine (default :func:`gen.factory.build_engine`, vLLM);
            called once, and only when work is left.

    Raises:
        InputError: bad options, missing problems or model, vLLM missing, or earlier output
            made with other settings.
    """
    wall_start = time.perf_counter()
    style = _choice(PromptStyle, prompt_style, "--prompt-style")
    stop_policy = _choice(StopPolicy, stop, "--stop")
    if max_new_tokens < 1:
        raise InputError(f"--max-new-tokens {max_new_tokens}: must be at least 1")
    if commit_every < 1:
        raise InputError(f"--commit-every {commit_every}: must be at least 1")
    if commit_seconds <= 0:
        raise InputError(f"--commit-seconds {commit_seconds}: must be positive")
    if tensor_parallel_size < 1 or data_parallel_size < 1:
        raise InputError("--tensor-parallel-size and --data-parallel-size must be at least 1")
    if engine_factory is None:
        require_vllm()
        from gen.factory import build_engine

        engine_factory = build_engine
    problems_path = Path(problems_path)
    output_dir = Path(output_dir)
    rows = select_rows(read_problems(problems_path), start=start, end=end, limit=limit)

    source = resolve_model(model, revision=revision)
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(source.path, revision=source.revision)
    stops = stop_tokens(source.path, tokenizer, policy=stop_policy, revision=source.revision)
    context = context_length(source.path, revision=source.revision, max_model_len=max_model_len)
    device = detect_device()
    dtype = check_dtype(dtype or default_dtype(device))
    eager = default_enforce_eager(device) if enforce_eager is None else enforce_eager
    batch_invariant, batch_invariant_note = batch_invariant_support(device) if deterministic else (False, None)

    tasks, excluded = split_overflow(build_tasks(rows, tokenizer, style), context)
    settings = {
        "model_path": source.path,
        "model_revision": source.revision,
        "model_hash": source.content_hash,
        "dtype": dtype,
        "prompt_style": style.value,
        "max_new_tokens": max_new_tokens,
        "max_model_len": context,
        "stop_token_ids": list(stops.ids),
        "seed": seed,
        "deterministic": deterministic,
        "ignore_eos": stops.ignore_eos,
    }
    assert set(settings) == set(SETTINGS_KEYS)

    with output_lock(output_dir):
        store = GenerationStore(output_dir)
        previous = store.open(settings, overwrite=overwrite)
        _check_same_prompts(store, tasks, output_dir)
        done = store.done_ids
        pending = [t for t in tasks if t.task_id not in done]
        if not pending and previous is not None and store.parquet_path.is_file():
            return _nothing_to_do(store, previous, rows, tasks, excluded, time.perf_counter() - wall_start)

        engine_config = EngineConfig(
            model=source.path,
            revision=source.revision,
            dtype=dtype,
            max_model_len=context,
            max_new_tokens=max_new_tokens,
            stop_token_ids=stops.ids,
            ignore_eos=stops.ignore_eos,
            tensor_parallel_size=tensor_parallel_size,
            enforce_eager=eager,
            enable_prefix_caching=not deterministic,
            batch_invariant=batch_invariant,
            seed=seed,
        )
        cpu_env = apply_cpu_env_defaults() if device == "cpu" else None
        run_info: dict[str, Any] = {
            "started": datetime.now(timezone.utc).isoformat(),
            keys.VLLM_VERSION: vllm_version(),
            keys.DEVICE: device_name(device),
            "tensor_parallel_size": tensor_parallel_size,
            "data_parallel_size": data_parallel_size,
            "commit_every": commit_every,
            "commit_seconds": commit_seconds,
            "enforce_eager": eager,
            "enable_prefix_caching": engine_config.enable_prefix_caching,
            "batch_invariant": batch_invariant,
            "batch_invariant_note": batch_invariant_note,
            "cpu_env": cpu_env,
            "max_num_seqs": None,
            "n_generated": 0,
            "n_commits": 0,
            keys.N_COMPLETION_TOKENS: 0,
            "engine_load_time_s": 0.0,
            keys.GENERATION_TIME_S: 0.0,
            keys.WALL_TIME_S: 0.0,
        }
        base = _metadata(
            settings=settings,
            stop_policy=stop_policy,
            source=source,
            stops_source=stops.source,
            tokenizer=tokenizer,
            problems_path=problems_path,
            selection={"start": start, "end": end, "limit": limit, "n_selected": len(rows)},
            excluded=_merge_excluded(previous, excluded),
            run_info=run_info,
            previous_runs=(previous or {}).get(keys.RUNS, []),
        )
        store.write_metadata({**base, **_totals(store, complete=False, runs=base[keys.RUNS])})

        def record(stats: StreamStats, *, complete: bool = False) -> dict[str, Any]:
            # Keeps the metadata current at every commit, so a killed run's committed work and
            # its engine time up to that commit stay on record.
            run_info.update(
                {
                    "n_generated": stats.n_tasks,
                    "n_commits": stats.n_commits,
                    keys.N_COMPLETION_TOKENS: stats.n_completion_tokens,
                    keys.GENERATION_TIME_S: stats.engine_time_s,
                    keys.WALL_TIME_S: time.perf_counter() - wall_start,
                }
            )
            metadata = {**base, "max_num_seqs": run_info["max_num_seqs"], **_totals(store, complete=complete, runs=base[keys.RUNS])}
            store.write_metadata(metadata)
            return metadata

        stats = StreamStats(0, 0, 0, 0.0)
        if pending:
            load_start = time.perf_counter()
            engine = engine_factory(engine_config, data_parallel_size=data_parallel_size, device=device)
            run_info["engine_load_time_s"] = time.perf_counter() - load_start
            run_info["max_num_seqs"] = getattr(engine, "max_num_seqs", None)
            try:
                stats = run_stream(
                    tasks=pending,
                    engine=engine,
                    store=store,
                    decode=lambda ids: tokenizer.decode(ids, skip_special_tokens=True),
                    commit_every=commit_every,
                    commit_seconds=commit_seconds,
                    on_commit=record,
                    progress=progress,
                    total=len(tasks),
                    initial=len(tasks) - len(pending),
                )
            finally:
                engine.close()
        else:  # every selected prompt overflowed: an empty file that lists them as excluded
            store.commit([])
        complete = store.done_ids >= {t.task_id for t in tasks}
        metadata = record(stats, complete=complete)
    return GenerateResult(
        parquet_path=store.parquet_path,
        metadata_path=store.metadata_path,
        n_selected=len(rows),
        n_generated=stats.n_tasks,
        n_skipped=len(tasks) - len(pending),
        n_excluded=len(excluded),
        n_completion_tokens=stats.n_completion_tokens,
        engine_load_time_s=run_info["engine_load_time_s"],
        generation_time_s=stats.engine_time_s,
        wall_time_s=run_info[keys.WALL_TIME_S],
        metadata=metadata,
        n_commits=stats.n_commits,
        max_num_seqs=run_info["max_num_seqs"],
    )


def _choice(enum: Any, value: Any, flag: str) -> Any:
    try:
        return enum(value)
    except ValueError:
        raise InputError(f"{flag} {value}: choose one of {', '.join(e.value for e in enum)}") from None


def _check_same_prompts(store: GenerationStore, tasks: list[PromptTask], output_dir: Path) -> None:
    """Stored rows must have been made from the same prompt ids (a changed problems file would not)."""
    table = store.table
    if table.num_rows == 0:
        return
    stored = dict(zip(table.column("task_id").to_pylist(), table.column("prompt_token_ids").to_pylist()))
    changed = [t.task_id for t in tasks if t.task_id in stored and tuple(stored[t.task_id]) != t.token_ids]
    if changed:
        raise InputError(
            f"{output_dir}: stored prompts of task(s) {changed[:10]} differ from this run's "
            "(problems file or tokenizer changed); pass --overwrite to regenerate"
        )


def _merge_excluded(previous: dict[str, Any] | None, excluded: list[dict[str, Any]]) -> list[dict[str, Any]]:
    merged = {e["task_id"]: e for e in (previous or {}).get(keys.EXCLUDED, [])}
    merged.update({e["task_id"]: e for e in excluded})
    return [merged[k] for k in sorted(merged)]


def _metadata(
    *,
    settings: dict[str, Any],
    stop_policy: StopPolicy,
    source: ModelSource,
    stops_source: str,
    tokenizer: Any,
    problems_path: Path,
    selection: dict[str, Any],
    excluded: list[dict[str, Any]],
    run_info: dict[str, Any],
    previous_runs: list[dict[str, Any]],
) -> dict[str, Any]:
    """The metadata fields fixed for this run (totals are added by :func:`_totals`)."""
    return {
        keys.MODEL: source.name,
        keys.MODEL_PATH: settings["model_path"],
        keys.MODEL_REVISION: settings["model_revision"],
        keys.MODEL_HASH: settings["model_hash"],
        keys.DTYPE: settings["dtype"],
        keys.VLLM_VERSION: run_info[keys.VLLM_VERSION],
        keys.DEVICE: run_info[keys.DEVICE],
        keys.PROMPT_STYLE: settings["prompt_style"],
        keys.MAX_NEW_TOKENS: settings["max_new_tokens"],
        "max_model_len": settings["max_model_len"],
        "seed": settings["seed"],
        "temperature": 0.0,
        "deterministic": settings["deterministic"],
        "enable_prefix_caching": run_info["enable_prefix_caching"],
        "batch_invariant": run_info["batch_invariant"],
        "batch_invariant_note": run_info["batch_invariant_note"],
        "enforce_eager": run_info["enforce_eager"],
        "commit_every": run_info["commit_every"],
        "commit_seconds": run_info["commit_seconds"],
        "tensor_parallel_size": run_info["tensor_parallel_size"],
        "data_parallel_size": run_info["data_parallel_size"],
        keys.STOP: stop_policy.value,
        keys.IGNORE_EOS: settings["ignore_eos"],
        keys.STOP_TOKEN_IDS: settings["stop_token_ids"],
        "stop_token_source": stops_source,
        "bos_token_id": tokenizer.bos_token_id,
        "problems_file": str(problems_path),
        "problems_sha256": sha256_file(problems_path),
        "selection": selection,
        keys.EXCLUDED_TASK_IDS: [e["task_id"] for e in excluded],
        keys.EXCLUDED: excluded,
        keys.SETTINGS: settings,
        keys.RUNS: [*previous_runs, run_info],
    }


def _run_sum(runs: list[dict[str, Any]], key: str) -> float:
    return float(sum(float(run.get(key) or 0.0) for run in runs))


def _totals(store: GenerationStore, *, complete: bool, runs: list[dict[str, Any]]) -> dict[str, Any]:
    """Counts over every stored row; times summed over the runs that made them.

    ``generation_time_s`` is engine time (each run's first submission to its last finish,
    as of its last commit), so ``tokens_per_s`` is the rate the engine sustained, not a sum
    of overlapping per-task times.
    """
    table = store.table
    n_tokens = int(sum(table.column("n_completion_tokens").to_pylist()))
    gen_time = _run_sum(runs, keys.GENERATION_TIME_S)
    return {
        keys.N_TASKS: table.num_rows,
        keys.COMPLETE: complete,
        "n_prompt_tokens": int(sum(table.column("n_prompt_tokens").to_pylist())),
        keys.N_COMPLETION_TOKENS: n_tokens,
        keys.GENERATION_TIME_S: gen_time,
        keys.WALL_TIME_S: _run_sum(runs, keys.WALL_TIME_S),
        keys.TOKENS_PER_S: n_tokens / gen_time if gen_time else 0.0,
        "creation_timestamp": datetime.now(timezone.utc).isoformat(),
    }


def _nothing_to_do(
    store: GenerationStore,
    previous: dict[str, Any] | None,
    rows: pd.DataFrame,
    tasks: list[PromptTask],
    excluded: list[dict[str, Any]],
    wall: float,
) -> GenerateResult:
    """Every selected task is stored already: touch nothing, start no engine."""
    return GenerateResult(
        parquet_path=store.parquet_path,
        metadata_path=store.metadata_path,
        n_selected=len(rows),
        n_generated=0,
        n_skipped=len(tasks),
        n_excluded=len(excluded),
        n_completion_tokens=0,
        engine_load_time_s=0.0,
        generation_time_s=0.0,
        wall_time_s=wall,
        metadata=previous or {},
    )
