"""Stream every pending prompt through an engine, committing completions as they finish.

Every pending task is submitted at once and the engine schedules them (up to its
``max_num_seqs`` at a time); each ``step`` returns the requests that finished in it. Finished
rows are committed to the store in small atomic batches: every ``commit_every``
completions or every ``commit_seconds``, whichever comes first (and whatever is left at
the end), so a crash or SIGKILL loses only the requests still in flight and the rows
waiting for the next commit.

Times: a task's ``generation_time`` is the driver's monotonic time from its submission to
the ``step`` that returned it finished (the tasks overlap, so these do not add up to the
run); the run's engine time is first submission to last finish.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from enum import Enum

from tqdm import tqdm

from artifacts.schema import generations as cols
from gen.config import DEFAULT_COMMIT_EVERY, DEFAULT_COMMIT_SECONDS
from gen.engine import Completion, Engine
from gen.store import GenerationStore


class FinishReason(str, Enum):
    STOP = cols.FINISH_STOP  # a stop id
    LENGTH = cols.FINISH_LENGTH  # max_new_tokens or the context ran out


@dataclass(frozen=True)
class PromptTask:
    """One problem ready for the engine."""

    task_id: int
    prompt: str
    token_ids: tuple[int, ...]

    @property
    def request_id(self) -> str:
        """The engine request id: ``str(task_id)``."""
        return str(self.task_id)


@dataclass(frozen=True)
class StreamStats:
    """What one :func:`run_stream` call produced so far (also passed to ``on_commit``).

    Attributes:
        n_tasks: completions committed.
        n_commits: atomic commits made.
        n_completion_tokens: generated tokens committed.
        engine_time_s: first submission to the last finish seen.
    """

    n_tasks: int
    n_commits: int
    n_completion_tokens: int
    engine_time_s: float

    @property
    def tokens_per_s(self) -> float:
        return self.n_completion_tokens / self.engine_time_s if self.engine_time_s > 0 else 0.0


def completion_row(task: PromptTask, completion: Completion, seconds: float, decode: Callable[[list[int]], str]) -> dict:
    """The parquet row of one finished task (see :mod:`gen.store` for the schema)."""
    ids = list(completion.token_ids)
    return {
        cols.COL_TASK_ID: task.task_id,
        cols.COL_PROMPT: task.prompt,
        cols.COL_PROMPT_TOKEN_IDS: list(task.token_ids),
        cols.COL_COMPLETION_TOKEN_IDS: ids,
        cols.COL_COMPLETION: decode(ids),
        cols.COL_FINISH_REASON: FinishReason(completion.finish_reason).value,
        cols.COL_N_PROMPT_TOKENS: len(task.token_ids),
        cols.COL_N_COMPLETION_TOKENS: len(ids),
        cols.COL_GENERATION_TIME: seconds,
    }


def run_stream(
    *,
    tasks: Sequence[PromptTask],
    engine: Engine,
    store: GenerationStore,
    decode: Callable[[list[int]], str],
    commit_every: int = DEFAULT_COMMIT_EVERY,
    commit_seconds: float = DEFAULT_COMMIT_SECONDS,
    on_commit: Callable[[StreamStats], None] | None = None,
    progress: bool = True,
    total: int | None = None,
    initial: int = 0,
    clock: Callable[[], float] = time.monotonic,
) -> StreamStats:
    """Submit ``tasks`` to ``engine`` at once and commit their completions to ``store`` as they finish.

    Args:
        tasks: the pending tasks (distinct task ids).
        engine: a streaming engine (:class:`gen.engine.Engine`).
        store: where finished rows are committed (atomically).
        decode: token ids to text (special tokens skipped).
        commit_every: commit once this many finished rows wait.
        commit_seconds: commit waiting rows once this long has passed since the last commit.
        on_commit: called after every commit with the totals so far (the metadata writer).
        progress: show a tqdm bar over problems, with tokens/s and the number unfinished.
        total, initial: the bar's full size and its start (tasks already done).
        clock: monotonic seconds (the tests pass a fake one).

    Raises:
        ValueError: a bad commit setting or a repeated task id.
        RuntimeError: the engine returned an unknown request id, or stopped with tasks unreturned.
    """
    if commit_every < 1:
        raise ValueError("commit_every must be at least 1")
    if commit_seconds <= 0:
        raise ValueError("commit_seconds must be positive")
    unfinished = {t.request_id: t for t in tasks}
    if len(unfinished) != len(tasks):
        raise ValueError("task ids repeat")
    start = clock()
    submitted: dict[str, float] = {}
    for task in tasks:
        submitted[task.request_id] = clock()
        engine.add_request(task.request_id, task.token_ids)

    buffer: list[dict] = []
    n_rows = n_commits = n_tokens = 0
    last_finish = start
    last_commit = clock()

    def commit() -> None:
        nonlocal buffer, n_rows, n_commits, n_tokens, last_commit
        rows, buffer = buffer, []
        store.commit(rows)
        n_rows += len(rows)
        n_tokens += sum(r[cols.COL_N_COMPLETION_TOKENS] for r in rows)
        n_commits += 1
        last_commit = clock()
        if on_commit is not None:
            on_commit(StreamStats(n_rows, n_commits, n_tokens, last_finish - start))

    with tqdm(total=total or len(tasks), initial=initial, unit="problem", disable=not progress, desc="generate") as bar:
        try:
            seen_tokens = 0
            while engine.has_unfinished_requests():
                done = engine.step()
                now = clock()
                for completion in done:
                    task = unfinished.pop(completion.request_id, None)
                    if task is None:
                        raise RuntimeError(f"engine returned request {completion.request_id!r}, which is not pending")
                    buffer.append(completion_row(task, completion, now - submitted[task.request_id], decode))
                    seen_tokens += len(completion.token_ids)
                if done:
                    last_finish = now
                    bar.update(len(done))
                    elapsed = now - start
                    bar.set_postfix(tok_s=f"{seen_tokens / elapsed:.1f}" if elapsed > 0 else "-", unfinished=len(unfinished))
                if buffer and (len(buffer) >= commit_every or now - last_commit >= commit_seconds):
                    commit()
        finally:
            # Rows that finished before an error or Ctrl-C are kept; only requests in flight are lost.
            if buffer:
                commit()
    if unfinished:
        raise RuntimeError(f"engine stopped with {len(unfinished)} task(s) unreturned: {sorted(unfinished)[:10]}")
    return StreamStats(n_rows, n_commits, n_tokens, last_finish - start)
