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
from dataclasses import dataclass, field
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
    _check_commit_settings(commit_every, commit_seconds)
    unfinished = _by_request_id(tasks)
    start = clock()
    submitted = _submit_all(tasks, engine, clock)
    commits = _Commits(store=store, clock=clock, on_commit=on_commit, every=commit_every, seconds=commit_seconds,
                       start=start, last_commit=clock())
    with tqdm(total=total or len(tasks), initial=initial, unit="problem", disable=not progress, desc="generate") as bar:
        try:
            _step_until_done(engine, unfinished, submitted, decode, commits, bar)
        finally:
            # Rows that finished before an error or Ctrl-C are kept; only requests in flight are lost.
            if commits.rows:
                commits.commit()
    if unfinished:
        raise RuntimeError(f"engine stopped with {len(unfinished)} task(s) unreturned: {sorted(unfinished)[:10]}")
    return commits.stats()


def _check_commit_settings(commit_every: int, commit_seconds: float) -> None:
    """Refuse a commit count below one or a commit interval that is not positive."""
    if commit_every < 1:
        raise ValueError("commit_every must be at least 1")
    if commit_seconds <= 0:
        raise ValueError("commit_seconds must be positive")


def _by_request_id(tasks: Sequence[PromptTask]) -> dict[str, PromptTask]:
    """The pending tasks by request id; a repeated task id is refused."""
    unfinished = {t.request_id: t for t in tasks}
    if len(unfinished) != len(tasks):
        raise ValueError("task ids repeat")
    return unfinished


def _submit_all(tasks: Sequence[PromptTask], engine: Engine, clock: Callable[[], float]) -> dict[str, float]:
    """Add every task to ``engine`` at once; return each request's submission time."""
    submitted: dict[str, float] = {}
    for task in tasks:
        submitted[task.request_id] = clock()
        engine.add_request(task.request_id, task.token_ids)
    return submitted


@dataclass
class _Commits:
    """The finished rows waiting for a commit, the totals committed so far and when to commit next."""

    store: GenerationStore
    clock: Callable[[], float]
    on_commit: Callable[[StreamStats], None] | None
    every: int
    seconds: float
    start: float
    last_commit: float
    rows: list[dict] = field(default_factory=list)
    n_rows: int = 0
    n_commits: int = 0
    n_tokens: int = 0
    last_finish: float = field(init=False)

    def __post_init__(self) -> None:
        self.last_finish = self.start  # no finish yet: no engine time

    def due(self, now: float) -> bool:
        """Rows wait, and either enough of them or enough time since the last commit."""
        return bool(self.rows) and (len(self.rows) >= self.every or now - self.last_commit >= self.seconds)

    def commit(self) -> None:
        """Commit the waiting rows atomically, then report the totals to ``on_commit``."""
        rows, self.rows = self.rows, []
        self.store.commit(rows)
        self.n_rows += len(rows)
        self.n_tokens += sum(r[cols.COL_N_COMPLETION_TOKENS] for r in rows)
        self.n_commits += 1
        self.last_commit = self.clock()
        if self.on_commit is not None:
            self.on_commit(self.stats())

    def stats(self) -> StreamStats:
        """The totals committed so far; engine time runs from the first submission to the last finish."""
        return StreamStats(self.n_rows, self.n_commits, self.n_tokens, self.last_finish - self.start)


def _step_until_done(engine: Engine, unfinished: dict[str, PromptTask], submitted: dict[str, float],
                     decode: Callable[[list[int]], str], commits: _Commits, bar: tqdm) -> None:
    """Step ``engine`` until nothing is unfinished, queueing each finished row and committing when due."""
    seen_tokens = 0
    while engine.has_unfinished_requests():
        done = engine.step()
        now = commits.clock()
        for completion in done:
            task = unfinished.pop(completion.request_id, None)
            if task is None:
                raise RuntimeError(f"engine returned request {completion.request_id!r}, which is not pending")
            # Appended one by one: rows queued before an unknown id are still committed on the way out.
            commits.rows.append(completion_row(task, completion, now - submitted[task.request_id], decode))
            seen_tokens += len(completion.token_ids)
        if done:
            commits.last_finish = now
            _show_progress(bar, len(done), seen_tokens, now - commits.start, len(unfinished))
        if commits.due(now):
            commits.commit()


def _show_progress(bar: tqdm, n_done: int, seen_tokens: int, elapsed: float, n_unfinished: int) -> None:
    """Advance the bar by the tasks that just finished; show tokens/s so far and what is unfinished."""
    bar.update(n_done)
    bar.set_postfix(tok_s=f"{seen_tokens / elapsed:.1f}" if elapsed > 0 else "-", unfinished=n_unfinished)
