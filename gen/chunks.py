"""Run prompts through an engine chunk by chunk, committing each finished chunk.

A chunk (64 problems by default) is one ``engine.generate`` call, so it is also the batch
vLLM schedules from; its wall time is spread over its tasks in proportion to their
generated tokens (decode steps dominate the cost).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from enum import Enum

from tqdm import tqdm

from gen.engine import Completion, Engine
from gen.store import GenerationStore


class FinishReason(str, Enum):
    STOP = "stop"  # an end-of-turn id
    LENGTH = "length"  # max_new_tokens or the context ran out


@dataclass(frozen=True)
class PromptTask:
    """One problem ready for the engine."""

    task_id: int
    prompt: str
    token_ids: tuple[int, ...]


@dataclass(frozen=True)
class ChunkStats:
    """What one :func:`run_chunks` call produced."""

    n_tasks: int
    n_chunks: int
    n_completion_tokens: int
    generation_time_s: float


def batched(items: Sequence[PromptTask], size: int) -> Iterator[Sequence[PromptTask]]:
    if size < 1:
        raise ValueError("chunk size must be at least 1")
    for start in range(0, len(items), size):
        yield items[start : start + size]


def spread_time(total: float, weights: Sequence[int]) -> list[float]:
    """Split ``total`` seconds over items in proportion to ``weights`` (evenly if all are 0)."""
    mass = sum(weights)
    if mass <= 0:
        return [total / len(weights)] * len(weights) if weights else []
    return [total * w / mass for w in weights]


def completion_rows(
    chunk: Sequence[PromptTask], completions: Sequence[Completion], seconds: float, decode: Callable[[list[int]], str]
) -> list[dict]:
    """The parquet rows of one chunk (``completions`` in the chunk's order)."""
    if len(completions) != len(chunk):
        raise RuntimeError(f"engine returned {len(completions)} completions for {len(chunk)} prompts")
    times = spread_time(seconds, [len(c.token_ids) for c in completions])
    rows = []
    for task, completion, t in zip(chunk, completions, times):
        ids = list(completion.token_ids)
        rows.append(
            {
                "task_id": task.task_id,
                "prompt": task.prompt,
                "prompt_token_ids": list(task.token_ids),
                "completion_token_ids": ids,
                "completion": decode(ids),
                "finish_reason": FinishReason(completion.finish_reason).value,
                "n_prompt_tokens": len(task.token_ids),
                "n_completion_tokens": len(ids),
                "generation_time": t,
            }
        )
    return rows


def run_chunks(
    *,
    tasks: Sequence[PromptTask],
    engine: Engine,
    store: GenerationStore,
    chunk_size: int,
    decode: Callable[[list[int]], str],
    progress: bool = True,
    total: int | None = None,
    initial: int = 0,
) -> ChunkStats:
    """Generate ``tasks`` in chunks of ``chunk_size``, committing each chunk to ``store``.

    Args:
        tasks: the pending tasks, in order.
        engine: anything with ``generate(prompts) -> completions``.
        store: where finished chunks are committed (atomically).
        chunk_size: problems per ``engine.generate`` call.
        decode: token ids to text (special tokens skipped).
        progress: show a tqdm bar over problems.
        total, initial: the bar's full size and its start (tasks already done).
    """
    n_tokens = n_chunks = 0
    seconds = 0.0
    with tqdm(total=total or len(tasks), initial=initial, unit="problem", disable=not progress, desc="generate") as bar:
        for chunk in batched(tasks, chunk_size):
            start = time.perf_counter()
            completions = engine.generate([t.token_ids for t in chunk])
            elapsed = time.perf_counter() - start
            rows = completion_rows(chunk, completions, elapsed, decode)
            store.commit(rows)
            n_chunks += 1
            seconds += elapsed
            n_tokens += sum(r["n_completion_tokens"] for r in rows)
            bar.update(len(chunk))
            bar.set_postfix(tok_s=f"{n_tokens / seconds:.1f}" if seconds else "-")
    return ChunkStats(len(tasks), n_chunks, n_tokens, seconds)
