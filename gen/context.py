"""The context length vLLM runs with, decided here so the prompt-overflow check agrees with it."""

from __future__ import annotations

from typing import Any

from artifacts.errors import InputError

CONTEXT_KEYS = ("max_position_embeddings", "n_positions", "max_seq_len", "seq_length")


def context_length(model_path: str, *, revision: str | None = None, max_model_len: int | None = None) -> int:
    """The context vLLM will use: ``max_model_len`` when given, else the model's positions.

    Passing the result to vLLM explicitly keeps our prompt-overflow check and vLLM in agreement.

    Raises:
        InputError: ``max_model_len`` below 2, or a config naming no context length.
    """
    if max_model_len is not None:
        if max_model_len < 2:
            raise InputError(f"--max-model-len {max_model_len}: must be at least 2")
        return max_model_len
    from transformers import AutoConfig

    config = AutoConfig.from_pretrained(model_path, revision=revision)
    text_config: Any = config.get_text_config() if hasattr(config, "get_text_config") else config
    for key in CONTEXT_KEYS:
        value = getattr(text_config, key, None)
        if isinstance(value, int) and value > 0:
            return value
    raise InputError(f"{model_path}: config names no context length; pass --max-model-len")
