"""Prompt text, identical to the earlier phases so base and instruct runs see the same words.

Three styles:
- ``raw``: ``f"{text}\\n\\n{tests}\\n\\n# Solution:"``, each test line stripped and
  prefixed with ``"assert "`` only when it does not already start with ``assert``.
- ``raw-double-assert``: ``raw`` with every test line prefixed with ``"assert "``
  unconditionally, so MBPP's ``assert f(x) == y`` reads ``assert assert f(x) == y``. The
  earlier recorded runs (instruct 149/388, base 116/388) were made with this buggy prompt,
  fixed later in the research code; use it only to compare with data made before the fix.
- ``chat``: the ``raw`` text as a single user turn through the tokenizer's chat template,
  with the generation prompt appended.
"""

from __future__ import annotations

from collections.abc import Sequence
from enum import Enum
from typing import Any


class PromptStyle(str, Enum):
    RAW = "raw"
    CHAT = "chat"
    RAW_DOUBLE_ASSERT = "raw-double-assert"

    @property
    def uses_chat_template(self) -> bool:
        return self is PromptStyle.CHAT


DEFAULT_PROMPT_STYLE = PromptStyle.RAW
SOLUTION_MARKER = "# Solution:"
ASSERT = "assert"


def format_tests(test_list: Sequence[str], *, double_assert: bool = False) -> str:
    """Tests one per line, each stripped and starting with exactly one ``assert``.

    Args:
        test_list: MBPP test lines.
        double_assert: prefix ``assert `` unconditionally (the earlier phases' bug), so a
            line that already starts with ``assert`` reads ``assert assert ...``.
    """
    tests = (test.strip() for test in test_list)
    return "\n".join(t if t.startswith(ASSERT) and not double_assert else f"{ASSERT} {t}" for t in tests)


def build_prompt(text: str, test_list: Sequence[str], *, double_assert: bool = False) -> str:
    """The raw prompt: problem text, blank line, tests, blank line, ``# Solution:``."""
    return f"{text}\n\n{format_tests(test_list, double_assert=double_assert)}\n\n{SOLUTION_MARKER}"


def render_prompt(text: str, test_list: Sequence[str], style: PromptStyle | str, tokenizer: Any = None) -> str:
    """The prompt string for ``style``; ``chat`` needs a tokenizer with a chat template."""
    style = PromptStyle(style)
    prompt = build_prompt(text, test_list, double_assert=style is PromptStyle.RAW_DOUBLE_ASSERT)
    if not style.uses_chat_template:
        return prompt
    if tokenizer is None or not getattr(tokenizer, "chat_template", None):
        raise ValueError("prompt style 'chat' needs a tokenizer with a chat template")
    return tokenizer.apply_chat_template(
        [{"role": "user", "content": prompt}], tokenize=False, add_generation_prompt=True
    )
