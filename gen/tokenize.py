"""Prompt text to token ids with exactly one BOS, for every prompt style.

The double BOS trap: Gemma's chat template writes ``<bos>`` itself, and tokenizing the
templated text with special tokens adds a second one. So ``raw`` styles tokenize with the
tokenizer's own special tokens (Gemma adds ``<bos>``; SmolLM2's adds none), and ``chat``
tokenizes the templated text *without* them, prepending the BOS the tokenizer would add to
plain text when the template wrote none. Either way leading BOS collapse to one. These ids
are the truth: replay re-runs exactly them and never re-tokenizes text.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from problems.prompts import PromptStyle


def tokenizer_adds_bos(tokenizer: Any) -> bool:
    """Whether ``tokenizer(text)`` starts plain text with its BOS token."""
    if tokenizer.bos_token_id is None:
        return False
    return tokenizer("x", add_special_tokens=True)["input_ids"][:1] == [tokenizer.bos_token_id]


def leading_bos_count(ids: Sequence[int], bos_token_id: int | None) -> int:
    """How many BOS tokens open ``ids`` (0 when the tokenizer has no BOS)."""
    n = 0
    while bos_token_id is not None and n < len(ids) and ids[n] == bos_token_id:
        n += 1
    return n


def prompt_token_ids(rendered: str, tokenizer: Any, style: PromptStyle | str) -> list[int]:
    """Token ids of a prompt rendered by ``problems.prompts.render_prompt`` for ``style``, one BOS at most."""
    chat = PromptStyle(style).uses_chat_template
    bos = tokenizer.bos_token_id
    ids = list(tokenizer(rendered, add_special_tokens=not chat)["input_ids"])
    if chat and bos is not None and tokenizer_adds_bos(tokenizer) and ids[:1] != [bos]:
        ids = [bos, *ids]
    return [int(i) for i in ids[max(0, leading_bos_count(ids, bos) - 1):]]
