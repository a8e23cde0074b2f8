"""A scripted, deterministic engine serving exactly the streaming protocol of :class:`gen.engine.Engine`.

It behaves like vLLM's scheduler in the ways the generate stage depends on, and in no
others: every step, each running request (at most ``max_num_seqs``, admitted in arrival
order) emits the next id of its script; a request finishes when it emits one of the
config's stop ids (``stop``), reaches ``max_new_tokens`` or the context (``length``); a
step returns the requests that finished in it. The script of a prompt is a pure function
of its ids, so two runs over the same prompts produce the same tokens however they are
batched, and resume tests can compare against an uninterrupted run exactly.

Used by the tests of resume, metadata, exclusion and commit batching (milliseconds), and,
through :class:`ScriptedFactory`, to count engine starts.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from gen.engine import Completion, EngineConfig

EOS = 1  # the tiny Gemma-2's <eos>
END_OF_TURN = 5  # the tiny Gemma-2's <end_of_turn>
SCRIPT_LENGTH = 4096


def default_script(prompt: Sequence[int]) -> list[int]:
    """Ids in 10..409 derived from the prompt, with <end_of_turn> after a prompt-dependent count
    and <eos> a few ids later, so default stopping and ``--stop eos-only`` end at different places."""
    seed = sum(int(i) * (k + 1) for k, i in enumerate(prompt)) % 9973
    ids = [10 + (seed * 31 + 7 * k * k) % 400 for k in range(SCRIPT_LENGTH)]
    turn_end = 2 + seed % 6
    ids[turn_end] = END_OF_TURN
    ids[turn_end + 3] = EOS
    return ids


class ScriptedEngine:
    """A streaming engine whose "model" is ``script`` (prompt ids -> the ids it would generate).

    Args:
        config: as the real engine gets it (``max_new_tokens``, ``max_model_len``, ``stop_token_ids``).
        script: prompt ids -> generated ids (longer than any budget used).
        max_num_seqs: requests decoded at once.
        fail_at_step: raise ``KeyboardInterrupt`` at this step (0-based), like a crash mid-run.
    """

    def __init__(
        self,
        config: EngineConfig,
        *,
        script: Callable[[Sequence[int]], list[int]] = default_script,
        max_num_seqs: int = 4,
        fail_at_step: int | None = None,
    ) -> None:
        self.config = config
        self.script = script
        self.max_num_seqs: int | None = max_num_seqs
        self.fail_at_step = fail_at_step
        self.waiting: deque[tuple[str, list[int]]] = deque()
        self.running: dict[str, tuple[list[int], list[int], list[int]]] = {}
        self.added: list[str] = []
        self.n_steps = 0
        self.closed = False

    def add_request(self, request_id: str, prompt_token_ids: Sequence[int]) -> None:
        assert isinstance(request_id, str) and not self.closed
        self.added.append(request_id)
        self.waiting.append((request_id, [int(i) for i in prompt_token_ids]))

    def has_unfinished_requests(self) -> bool:
        return bool(self.waiting or self.running)

    def step(self) -> list[Completion]:
        if self.fail_at_step is not None and self.n_steps == self.fail_at_step:
            raise KeyboardInterrupt(f"scripted crash at step {self.n_steps}")
        self.n_steps += 1
        while self.waiting and len(self.running) < (self.max_num_seqs or len(self.waiting)):
            request_id, prompt = self.waiting.popleft()
            self.running[request_id] = (prompt, self.script(prompt), [])
        finished = []
        stops = set(self.config.stop_token_ids)
        for request_id, (prompt, script, out) in list(self.running.items()):
            out.append(script[len(out)])
            reason = None
            if out[-1] in stops:
                reason = "stop"
            elif len(out) >= self.config.max_new_tokens or len(prompt) + len(out) >= self.config.max_model_len:
                reason = "length"
            if reason:
                del self.running[request_id]
                finished.append(Completion(request_id, tuple(out), reason))
        return finished

    def close(self) -> None:
        self.closed = True


@dataclass
class ScriptedFactory:
    """An :class:`gen.engine.EngineFactory` building :class:`ScriptedEngine`; counts the engines it starts."""

    max_num_seqs: int = 4
    fail_at_step: int | None = None
    script: Callable[[Sequence[int]], list[int]] = default_script
    engines: list[ScriptedEngine] = field(default_factory=list)
    calls: list[dict] = field(default_factory=list)

    def __call__(self, config: EngineConfig, *, data_parallel_size: int, device: str) -> ScriptedEngine:
        self.calls.append({"config": config, "data_parallel_size": data_parallel_size, "device": device})
        engine = ScriptedEngine(config, script=self.script, max_num_seqs=self.max_num_seqs, fail_at_step=self.fail_at_step)
        self.engines.append(engine)
        return engine

    @property
    def starts(self) -> int:
        return len(self.engines)
