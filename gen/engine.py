"""What the generate stage needs from an engine: the streaming protocol, and nothing of vLLM.

The protocol mirrors vLLM's ``LLM.llm_engine`` (``add_request``, ``step``,
``has_unfinished_requests``): :class:`gen.vllm_engine.VllmEngine` wraps it thinly,
:class:`gen.ray_engine.RayEngine` serves it with replicas on Ray, and the tests drive the
stage with a scripted engine. This module imports nothing from the rest of ``gen``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol


@dataclass(frozen=True)
class Completion:
    """One finished greedy completion.

    Attributes:
        request_id: the id given to :meth:`Engine.add_request` (``str(task_id)``).
        token_ids: the generated ids, the stop id included when generation stopped on one.
        finish_reason: ``stop`` (a stop id) or ``length`` (``max_new_tokens`` or the context).
    """

    request_id: str
    token_ids: tuple[int, ...]
    finish_reason: str


class Engine(Protocol):
    """A streaming greedy engine; ``max_num_seqs`` is how many sequences it decodes at once (None: unknown)."""

    max_num_seqs: int | None

    def add_request(self, request_id: str, prompt_token_ids: Sequence[int]) -> None:
        """Queue one prompt (token ids, never text); returns at once."""

    def step(self) -> list[Completion]:
        """Run one engine step; return the requests that finished in it (often none)."""

    def has_unfinished_requests(self) -> bool:
        """Whether any added request has not been returned by :meth:`step` yet."""

    def close(self) -> None:
        """Stop the engine's processes and free their memory."""


@dataclass(frozen=True)
class EngineConfig:
    """Everything that shapes the engine and its sampling (all of it lands in the metadata).

    ``ignore_eos`` with ``stop_token_ids == (eos,)`` is ``--stop eos-only``: vLLM otherwise
    merges every ``eos_token_id`` of the generation config back into the stop ids.
    """

    model: str
    revision: str | None
    dtype: str
    max_model_len: int
    max_new_tokens: int
    stop_token_ids: tuple[int, ...]
    ignore_eos: bool = False
    tensor_parallel_size: int = 1
    enforce_eager: bool = False
    enable_prefix_caching: bool = True
    batch_invariant: bool = False
    seed: int = 0


class EngineFactory(Protocol):
    """Builds the engine :func:`gen.stage.run` streams through; called once, and only when work is left."""

    def __call__(self, config: EngineConfig, *, data_parallel_size: int, device: str) -> Engine: ...
