"""The context length vLLM runs with, decided here so the prompt-overflow check agrees with it."""

from __future__ import annotations

from artifacts.errors import InputError

CONTEXT_KEYS = ("max_position_embeddings", "n_positions", "max_seq_len", "seq_length")


def context_length(model_path: str, *, revision: str | None = None, max_model_len: int | None = None) -> int:
    """``max_model_len`` when given, else the model's positions (passed to vLLM explicitly).

    Raises:
        InputError: a config naming no context length.
    """
    if max_model_len is not None:
        return max_model_len
    from transformers import AutoConfig

    text_config = AutoConfig.from_pretrained(model_path, revision=revision).get_text_config()
    for key in CONTEXT_KEYS:
        value = getattr(text_config, key, None)
        if isinstance(value, int) and value > 0:
            return value
    raise InputError(f"{model_path}: config names no context length; pass --max-model-len")
