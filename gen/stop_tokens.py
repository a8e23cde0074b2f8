"""Stop token ids, read from the model's own files (never hard-coded), under a stop policy.

gemma-2-2b-it's ``generation_config.json`` lists ``<eos>`` (1) and ``<end_of_turn>`` (107); its
tokenizer's ``eos_token`` names only the first, so stopping on it alone runs past the turn's end.

| ``--stop``                | stops on                                        | vLLM sampling                         |
| ------------------------- | ----------------------------------------------- | ------------------------------------- |
| ``end-of-turn`` (default) | every ``eos_token_id`` of the generation config | ``stop_token_ids=ids``                |
| ``eos-only``              | the tokenizer's EOS (earlier tool, 7.6 code)    | ``ignore_eos, stop_token_ids=[eos]``  |

vLLM 0.32 merges the generation config's eos ids into ``stop_token_ids`` unless ``ignore_eos``.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum
from typing import Any

from artifacts.errors import InputError


class StopPolicy(str, Enum):
    END_OF_TURN = "end-of-turn"
    EOS_ONLY = "eos-only"


DEFAULT_STOP_POLICY = StopPolicy.END_OF_TURN


@dataclass(frozen=True)
class StopTokens:
    """The ids to stop on, their ``source`` file and whether vLLM must ignore the model's EOS (``eos-only``)."""

    ids: tuple[int, ...]
    source: str
    ignore_eos: bool = False


def _as_ids(value: Any) -> list[int]:
    if value is None:
        return []
    return [value] if isinstance(value, int) else [int(v) for v in value]


def end_of_turn_ids(model_path: str, tokenizer: Any = None, *, revision: str | None = None) -> StopTokens:
    """Stop ids from ``generation_config.json``, else ``config.json``, else ``tokenizer``'s EOS.

    Raises:
        InputError: no source names an end-of-sequence token.
    """
    from transformers import AutoConfig, GenerationConfig

    try:
        gen_config = GenerationConfig.from_pretrained(model_path, revision=revision)
    except OSError:  # no generation_config.json: older checkpoints
        gen_config = None
    readers = [
        ("generation_config", lambda: gen_config),
        ("config", lambda: AutoConfig.from_pretrained(model_path, revision=revision).get_text_config()),
        ("tokenizer", lambda: tokenizer),
    ]
    for source, read in readers:  # lazily: config.json is read only when the generation config names no EOS
        ids = _as_ids(getattr(read(), "eos_token_id", None))
        if ids:
            return StopTokens(tuple(dict.fromkeys(ids)), source)
    raise InputError(f"{model_path}: no eos_token_id in generation_config.json, config.json or the tokenizer")


def stop_tokens(
    model_path: str, tokenizer: Any, *, policy: StopPolicy | str = DEFAULT_STOP_POLICY, revision: str | None = None
) -> StopTokens:
    """The stop ids of ``policy`` (see the module table).

    Raises:
        InputError: no end-of-sequence id is known.
    """
    if StopPolicy(policy) is StopPolicy.END_OF_TURN:
        return end_of_turn_ids(model_path, tokenizer, revision=revision)
    eos = getattr(tokenizer, "eos_token_id", None)
    if eos is None:
        raise InputError(f"--stop eos-only: the tokenizer of {model_path} names no eos_token")
    return StopTokens((int(eos),), "tokenizer", ignore_eos=True)
