"""Stream every pending prompt through an engine, committing completions as they finish.

Every pending task is submitted at once and the engine schedules them (up to its
``max_num_seqs`` at a time); each ``step`` returns the requests that finished in it. Finished
rows are committed atomically every ``commit_every`` completions or ``commit_seconds``,
whichever comes first (and whatever is left at the end, or on an error), so a crash loses
only the requests in flight and the rows waiting for the next commit.

Times: a task's ``generation_time`` runs from its submission to the ``step`` that returned it
(the tasks overlap, so these do not add up); the engine time is first submission to last finish.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
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
    """One problem ready for the engine; its request id is ``str(task_id)``."""

    task_id: int
    prompt: str
    token_ids: tuple[int, ...]

    @property
    def request_id(self) -> str:
        return str(self.task_id)


@dataclass
class StreamStats:
    """What :func:`run_stream` committed so far: tasks, commits, tokens, and the engine time
    (first submission to the last finish seen)."""

    n_tasks: int = 0
    n_commits: int = 0
    n_completion_tokens: int = 0
    engine_time_s: float = 0.0

    @property
    def tokens_per_s(self) -> float:
        return self.n_completion_tokens / self.engine_time_s if self.engine_time_s > 0 else 0.0


def completion_row(task: PromptTask, completion: Completion, seconds: float,
                   decode: Callable[[list[int]], str]) -> dict:
    """The parquet row of one finished task (schema: :mod:`gen.store`)."""
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


@dataclass
class _Batch:
    """The finished rows waiting for their commit, and the totals committed so far."""

    store: GenerationStore
    on_commit: Callable[[StreamStats], None] | None
    clock: Callable[[], float]
    last_commit: float
    stats: StreamStats = field(default_factory=StreamStats)
    rows: list[dict] = field(default_factory=list)

    def commit(self) -> None:
        self.store.commit(self.rows)
        self.stats.n_tasks += len(self.rows)
        self.stats.n_completion_tokens += sum(r[cols.COL_N_COMPLETION_TOKENS] for r in self.rows)
        self.stats.n_commits += 1
        self.rows = []
        self.last_commit = self.clock()
        if self.on_commit is not None:
            self.on_commit(replace(self.stats))


def run_stream(*, tasks: Sequence[PromptTask], engine: Engine, store: GenerationStore,
               decode: Callable[[list[int]], str], commit_every: int = DEFAULT_COMMIT_EVERY,
               commit_seconds: float = DEFAULT_COMMIT_SECONDS, on_commit: Callable[[StreamStats], None] | None = None,
               progress: bool = True, total: int | None = None, initial: int = 0,
               clock: Callable[[], float] = time.monotonic) -> StreamStats:
    """Submit ``tasks`` (distinct ids) to ``engine`` at once and commit their completions to ``store`` as they finish.

    Args:
        decode: token ids to text (special tokens skipped).
        on_commit: called after every commit with the totals so far (the metadata writer).
        progress: show a tqdm bar over problems, ``total`` long, starting at ``initial`` (the tasks done before).
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
    batch = _Batch(store, on_commit, clock, last_commit=clock())
    seen_tokens = 0
    with tqdm(total=total or len(tasks), initial=initial, unit="problem", disable=not progress, desc="generate") as bar:
        try:
            while engine.has_unfinished_requests():
                done = engine.step()
                now = clock()
                for completion in done:
                    task = unfinished.pop(completion.request_id, None)
                    if task is None:
                        raise RuntimeError(f"engine returned request {completion.request_id!r}, which is not pending")
                    # One by one: rows queued before an unknown id are still committed on the way out.
                    batch.rows.append(completion_row(task, completion, now - submitted[task.request_id], decode))
                    seen_tokens += len(completion.token_ids)
                if done:
                    elapsed = now - start
                    batch.stats.engine_time_s = elapsed
                    bar.update(len(done))
                    rate = f"{seen_tokens / elapsed:.1f}" if elapsed > 0 else "-"
                    bar.set_postfix(tok_s=rate, unfinished=len(unfinished))
                if batch.rows and (len(batch.rows) >= commit_every or now - batch.last_commit >= commit_seconds):
                    batch.commit()
        finally:
            if batch.rows:  # rows finished before an error or Ctrl-C are kept
                batch.commit()
    if unfinished:
        raise RuntimeError(f"engine stopped with {len(unfinished)} task(s) unreturned: {sorted(unfinished)[:10]}")
    return batch.stats
