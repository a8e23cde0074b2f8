"""Prompt text to token ids with exactly one BOS, for both prompt styles.

The double BOS trap: Gemma's chat template writes ``<bos>`` itself, and tokenizing the
templated text with special tokens would add a second one. The rule here:

- ``raw`` (and ``raw-double-assert``): tokenize with the tokenizer's own special tokens (Gemma adds ``<bos>``;
  tokenizers that declare no BOS for plain text, such as SmolLM2's, add none).
- ``chat``: render the template to text (``tokenize=False``), then tokenize *without*
  special tokens; if the tokenizer adds a BOS to plain text and the template did not
  write one, prepend it.

Either way a run of several BOS at the start collapses to one. These ids are the truth:
the replay stage re-runs exactly them and never re-tokenizes text.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from problems.prompts import PromptStyle


def tokenizer_adds_bos(tokenizer: Any) -> bool:
    """Whether ``tokenizer(text)`` starts plain text with its BOS token."""
    bos = tokenizer.bos_token_id
    if bos is None:
        return False
    probe = tokenizer("x", add_special_tokens=True)["input_ids"]
    return bool(probe) and probe[0] == bos


def leading_bos_count(ids: Sequence[int], bos_token_id: int | None) -> int:
    """How many BOS tokens open ``ids`` (0 when the tokenizer has no BOS)."""
    if bos_token_id is None:
        return 0
    n = 0
    while n < len(ids) and ids[n] == bos_token_id:
        n += 1
    return n


def prompt_token_ids(rendered: str, tokenizer: Any, style: PromptStyle | str) -> list[int]:
    """Token ids of a rendered prompt (see the module docstring for the BOS rule).

    Args:
        rendered: the prompt string from ``problems.prompts.render_prompt`` for ``style``.
        tokenizer: the model's Hugging Face tokenizer.
        style: a :class:`PromptStyle`; ``chat`` text must already be templated.

    Returns:
        Python ints, opening with exactly one BOS when the model uses one.
    """
    style = PromptStyle(style)
    bos = tokenizer.bos_token_id
    if not style.uses_chat_template:
        ids = list(tokenizer(rendered, add_special_tokens=True)["input_ids"])
    else:
        ids = list(tokenizer(rendered, add_special_tokens=False)["input_ids"])
        if bos is not None and tokenizer_adds_bos(tokenizer) and ids[:1] != [bos]:
            ids = [bos, *ids]
    extra = leading_bos_count(ids, bos) - 1
    if extra > 0:
        ids = ids[extra:]
    return [int(i) for i in ids]
