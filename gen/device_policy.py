"""How vLLM is set up on each device: environment, eager mode, determinism, the device's name.

Device detection and the dtype vocabulary live in :mod:`artifacts.device` (shared with
replay); this module holds what only the generate stage decides.

| device | dtype (artifacts.device) | eager by default | environment set when unset                          |
| ------ | ------------------------ | ---------------- | --------------------------------------------------- |
| cpu    | float32                  | yes (1)          | VLLM_CPU_KVCACHE_SPACE (GiB, a quarter of RAM, 1..8) |
|        |                          |                  | VLLM_CPU_NUM_OF_RESERVED_CPU=0 (all cores compute:  |
|        |                          |                  | measured 1.7x faster, same tokens)                  |
| cuda   | bfloat16                 | no (graphs)      | none                                                |

(1) On these CPUs vLLM's compilation cost 185-326 s of engine start and decoded no faster;
eager started in 48 s. On GPUs compilation and CUDA graphs pay off, so they stay on.

``--deterministic`` turns prefix caching off and sets vLLM's batch-invariant mode
(``VLLM_BATCH_INVARIANT=1``) where vLLM implements it: CUDA GPUs of compute capability
8.0 or newer, ROCm and XPU. vLLM's batch-invariant kernels are GPU (Triton) kernels, so on
the CPU backend only prefix caching is turned off, and the metadata says so.
"""

from __future__ import annotations

import os
import platform

CPU_KVCACHE_ENV = "VLLM_CPU_KVCACHE_SPACE"
CPU_RESERVED_ENV = "VLLM_CPU_NUM_OF_RESERVED_CPU"
BATCH_INVARIANT_ENV = "VLLM_BATCH_INVARIANT"
EAGER_BY_DEFAULT = {"cpu": True}  # every other device: compile and capture graphs


def default_enforce_eager(device: str) -> bool:
    """Whether vLLM skips compilation on ``device`` unless told otherwise (table above)."""
    return EAGER_BY_DEFAULT.get(device, False)


def device_name(device: str) -> str:
    """A readable device description for the metadata, e.g. ``cpu:x86_64 x2``."""
    if device in ("cuda", "rocm"):
        import torch

        return f"{device}:{torch.cuda.get_device_name(0)} x{torch.cuda.device_count()}"
    return f"{device}:{platform.processor() or platform.machine()} x{os.cpu_count()}"


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

        from artifacts.device import detect_device

        if detect_device() != "cuda":  # a Ray driver without a GPU of its own
            return False, "no CUDA GPU on the driver to check vLLM's batch-invariant support; it stays off"
        major, minor = torch.cuda.get_device_capability(0)
        if major >= 8:
            return True, f"vLLM batch-invariant kernels on CUDA sm_{major}{minor}"
        return False, f"vLLM's batch-invariant mode needs CUDA compute capability 8.0+, this GPU is {major}.{minor}"
    return False, (
        f"vLLM's batch-invariant mode has no {device} kernels (they are GPU Triton kernels); "
        "--deterministic only turned prefix caching off"
    )
