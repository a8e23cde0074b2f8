"""End-of-turn token ids, read from the model's own files (never hard-coded).

gemma-2-2b-it's ``generation_config.json`` lists both ``<eos>`` (1) and ``<end_of_turn>``
(107); the tokenizer's ``eos_token`` names only one, so stopping on it alone would run
chat completions past the end of the turn.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from artifacts.errors import InputError


@dataclass(frozen=True)
class StopTokens:
    """The ids to stop on and the file they came from (``generation_config``, ``config``, ``tokenizer``)."""

    ids: tuple[int, ...]
    source: str


def _as_ids(value: Any) -> list[int]:
    if value is None:
        return []
    if isinstance(value, int):
        return [value]
    return [int(v) for v in value]


def end_of_turn_ids(model_path: str, tokenizer: Any = None, *, revision: str | None = None) -> StopTokens:
    """Stop ids from ``generation_config.json``, else ``config.json``, else the tokenizer's EOS.

    Args:
        model_path: checkpoint folder or hub id.
        tokenizer: the model's tokenizer, the last fallback.
        revision: hub revision.

    Raises:
        InputError: no source names an end-of-sequence token.
    """
    from transformers import AutoConfig, GenerationConfig

    try:
        gen_config = GenerationConfig.from_pretrained(model_path, revision=revision)
    except OSError:  # no generation_config.json: older checkpoints
        gen_config = None
    ids = _as_ids(getattr(gen_config, "eos_token_id", None))
    source = "generation_config"
    if not ids:
        config = AutoConfig.from_pretrained(model_path, revision=revision)
        text_config = config.get_text_config() if hasattr(config, "get_text_config") else config
        ids = _as_ids(getattr(text_config, "eos_token_id", None))
        source = "config"
    if not ids and tokenizer is not None:
        ids = _as_ids(tokenizer.eos_token_id)
        source = "tokenizer"
    if not ids:
        raise InputError(f"{model_path}: no eos_token_id in generation_config.json, config.json or the tokenizer")
    return StopTokens(tuple(dict.fromkeys(ids)), source)
