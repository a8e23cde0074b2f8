"""Stop token ids, read from the model's own files (never hard-coded), under a stop policy.

gemma-2-2b-it's ``generation_config.json`` lists both ``<eos>`` (1) and ``<end_of_turn>``
(107); the tokenizer's ``eos_token`` names only one, so stopping on it alone runs
completions past the end of the turn.

| ``--stop``            | stops on                                         | vLLM sampling                     |
| --------------------- | ------------------------------------------------ | --------------------------------- |
| ``end-of-turn`` (default) | every ``eos_token_id`` of the generation config | ``stop_token_ids=ids``            |
| ``eos-only``          | the tokenizer's ``eos_token_id`` only (what the earlier tool and the 7.6 steering code do with HF ``generate``) | ``ignore_eos=True, stop_token_ids=[eos]`` |

vLLM 0.32 merges the generation config's eos ids back into ``stop_token_ids`` unless
``ignore_eos`` is set, hence the second row's form.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum
from typing import Any

from artifacts.errors import InputError


class StopPolicy(str, Enum):
    END_OF_TURN = "end-of-turn"  # every eos id the model's generation config declares
    EOS_ONLY = "eos-only"  # the tokenizer's EOS alone (the earlier phases' stopping)


DEFAULT_STOP_POLICY = StopPolicy.END_OF_TURN


@dataclass(frozen=True)
class StopTokens:
    """The ids to stop on, the file they came from (``generation_config``, ``config``, ``tokenizer``),
    and whether vLLM must ignore the model's own EOS handling (``eos-only``)."""

    ids: tuple[int, ...]
    source: str
    ignore_eos: bool = False


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


def stop_tokens(
    model_path: str, tokenizer: Any, *, policy: StopPolicy | str = DEFAULT_STOP_POLICY, revision: str | None = None
) -> StopTokens:
    """The stop ids of ``policy`` (see the module table).

    Raises:
        InputError: no end-of-sequence id is known (``eos-only``: the tokenizer names none).
    """
    policy = StopPolicy(policy)
    if policy is StopPolicy.EOS_ONLY:
        eos = getattr(tokenizer, "eos_token_id", None)
        if eos is None:
            raise InputError(f"--stop eos-only: the tokenizer of {model_path} names no eos_token")
        return StopTokens((int(eos),), "tokenizer", ignore_eos=True)
    return end_of_turn_ids(model_path, tokenizer, revision=revision)
