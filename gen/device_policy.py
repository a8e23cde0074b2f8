"""How vLLM is set up on each device: environment, eager mode, determinism, the device's name.

| device | eager by default | environment set when unset                                              |
| ------ | ---------------- | ----------------------------------------------------------------------- |
| cpu    | yes (1)          | VLLM_CPU_KVCACHE_SPACE (GiB: a quarter of RAM, 1..8),                   |
|        |                  | VLLM_CPU_NUM_OF_RESERVED_CPU=0 (all cores compute: 1.7x faster, same tokens), |
|        |                  | VLLM_ENABLE_V1_MULTIPROCESSING=0 (2)                                    |
| others | no (graphs)      | none                                                                    |

(1) On these CPUs compilation cost 185-326 s of engine start and decoded no faster; eager started in 48 s.
(2) The engine in the calling process, its model in the same process: no engine-core and worker
    processes that each import vLLM and torch. Measured on 2 cores (demo model, 20 problems x 512
    tokens): same ids on 20 of 20, 168 vs 165 tokens/s, 58 vs 91 s wall; tiny Gemma-2: 22 vs 77 s.
    On Ray it leaves one engine-core process per replica (no worker process).

``--deterministic`` turns prefix caching off and sets vLLM's batch-invariant mode where vLLM has
its (Triton) kernels: CUDA compute capability 8.0+, ROCm and XPU; elsewhere the metadata says why not.
"""

from __future__ import annotations

import os
import platform

CPU_KVCACHE_ENV = "VLLM_CPU_KVCACHE_SPACE"
CPU_RESERVED_ENV = "VLLM_CPU_NUM_OF_RESERVED_CPU"
CPU_MULTIPROCESSING_ENV = "VLLM_ENABLE_V1_MULTIPROCESSING"
CPU_ENV = (CPU_KVCACHE_ENV, CPU_RESERVED_ENV, CPU_MULTIPROCESSING_ENV)
BATCH_INVARIANT_ENV = "VLLM_BATCH_INVARIANT"


def device_name(device: str) -> str:
    """A readable device description for the metadata, e.g. ``cpu:x86_64 x2``."""
    if device in ("cuda", "rocm"):
        import torch

        return f"{device}:{torch.cuda.get_device_name(0)} x{torch.cuda.device_count()}"
    return f"{device}:{platform.processor() or platform.machine()} x{os.cpu_count()}"


def apply_cpu_env_defaults() -> dict[str, str]:
    """Set the vLLM-CPU variables the user left unset; return the values in force."""
    ram_gib = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    # vLLM-CPU refuses more KV cache than it can pin.
    os.environ.setdefault(CPU_KVCACHE_ENV, str(int(max(1, min(8, ram_gib // 4)))))
    os.environ.setdefault(CPU_RESERVED_ENV, "0")
    os.environ.setdefault(CPU_MULTIPROCESSING_ENV, "0")
    return {name: os.environ[name] for name in CPU_ENV}


def batch_invariant_support(device: str) -> tuple[bool, str]:
    """Whether vLLM's batch-invariant mode works on ``device``, and why (not)."""
    if device in ("rocm", "xpu"):
        return True, f"vLLM batch-invariant kernels on {device}"
    if device != "cuda":
        return False, (
            f"vLLM's batch-invariant mode has no {device} kernels (they are GPU Triton kernels); "
            "--deterministic only turned prefix caching off"
        )
    import torch

    from artifacts.device import detect_device

    if detect_device() != "cuda":  # a Ray driver without a GPU of its own
        return False, "no CUDA GPU on the driver to check vLLM's batch-invariant support; it stays off"
    major, minor = torch.cuda.get_device_capability(0)
    if major >= 8:
        return True, f"vLLM batch-invariant kernels on CUDA sm_{major}{minor}"
    return False, f"vLLM's batch-invariant mode needs CUDA compute capability 8.0+, this GPU is {major}.{minor}"
