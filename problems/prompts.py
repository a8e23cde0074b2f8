"""Prompt text, identical to the earlier phases so base and instruct runs see the same words.

Two styles:
- ``raw``: ``f"{text}\\n\\n{tests}\\n\\n# Solution:"``, each test line stripped and
  prefixed with ``"assert "`` only when it does not already start with ``assert``.
- ``chat``: that same text as a single user turn through the tokenizer's chat template,
  with the generation prompt appended.
"""

from __future__ import annotations

from collections.abc import Sequence
from enum import Enum
from typing import Any


class PromptStyle(str, Enum):
    RAW = "raw"
    CHAT = "chat"


DEFAULT_PROMPT_STYLE = PromptStyle.RAW
SOLUTION_MARKER = "# Solution:"


def format_tests(test_list: Sequence[str]) -> str:
    """Tests one per line, each stripped and starting with exactly one ``assert``."""
    lines = []
    for test in test_list:
        test = test.strip()
        lines.append(test if test.startswith("assert") else f"assert {test}")
    return "\n".join(lines)


def build_prompt(text: str, test_list: Sequence[str]) -> str:
    """The raw prompt: problem text, blank line, tests, blank line, ``# Solution:``."""
    return f"{text}\n\n{format_tests(test_list)}\n\n{SOLUTION_MARKER}"


def render_prompt(text: str, test_list: Sequence[str], style: PromptStyle | str, tokenizer: Any = None) -> str:
    """The prompt string for ``style``; ``chat`` needs a tokenizer with a chat template."""
    style = PromptStyle(style)
    prompt = build_prompt(text, test_list)
    if style is PromptStyle.RAW:
        return prompt
    if tokenizer is None or not getattr(tokenizer, "chat_template", None):
        raise ValueError("prompt style 'chat' needs a tokenizer with a chat template")
    return tokenizer.apply_chat_template(
        [{"role": "user", "content": prompt}], tokenize=False, add_generation_prompt=True
    )
