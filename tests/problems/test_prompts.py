"""Prompt text must equal the earlier phases' text character by character."""

from __future__ import annotations

import pytest

from problems.prompts import PromptStyle, build_prompt, format_tests, render_prompt
from problems.sources import load_mbpp

TASK_1_PROMPT = (
    "Write a function to find the minimum cost path to reach (m, n) from (0, 0) for the given cost "
    "matrix cost[][] and a position (m, n) in cost[][].\n"
    "\n"
    "assert min_cost([[1, 2, 3], [4, 8, 2], [1, 5, 3]], 2, 2) == 8\n"
    "assert min_cost([[2, 3, 4], [5, 9, 3], [2, 6, 4]], 2, 2) == 12\n"
    "assert min_cost([[3, 4, 5], [6, 10, 4], [3, 7, 5]], 2, 2) == 16\n"
    "\n"
    "# Solution:"
)


def test_prompt_of_task_1_character_by_character(mbpp_path):
    df, _ = load_mbpp(mbpp_path)
    row = df.set_index("task_id").loc[1]
    assert build_prompt(row["text"], row["test_list"]) == TASK_1_PROMPT


def test_assert_prefixed_only_when_missing():
    assert format_tests(["  assert f(1) == 2 ", "f(2) == 3", "\tassert g()"]) == (
        "assert f(1) == 2\nassert f(2) == 3\nassert g()"
    )
    assert "assert assert" not in format_tests(["assert x == 1"])


class _Template:
    chat_template = "x"

    def apply_chat_template(self, messages, tokenize, add_generation_prompt):
        assert tokenize is False and add_generation_prompt is True
        return f"<bos>[user]{messages[0]['content']}[/user][model]"


def test_chat_style_wraps_the_raw_prompt_in_one_user_turn():
    raw = build_prompt("Do x.", ["f() == 1"])
    assert render_prompt("Do x.", ["f() == 1"], PromptStyle.RAW) == raw
    assert render_prompt("Do x.", ["f() == 1"], "chat", _Template()) == f"<bos>[user]{raw}[/user][model]"


def test_chat_style_needs_a_template():
    with pytest.raises(ValueError, match="chat template"):
        render_prompt("Do x.", ["f() == 1"], "chat", None)


def test_raw_double_assert_prefixes_every_test_line(mbpp_path):
    """The earlier recorded runs' prompt: ``assert `` before every line, so MBPP's own asserts double."""
    assert format_tests(["  assert f(1) == 2 ", "f(2) == 3"], double_assert=True) == "assert assert f(1) == 2\nassert f(2) == 3"
    df, _ = load_mbpp(mbpp_path)
    row = df.set_index("task_id").loc[1]
    buggy = render_prompt(row["text"], row["test_list"], PromptStyle.RAW_DOUBLE_ASSERT)
    assert buggy == TASK_1_PROMPT.replace("\nassert min_cost", "\nassert assert min_cost")
    assert buggy.count("assert assert ") == 3
    assert render_prompt(row["text"], row["test_list"], "raw-double-assert", _Template()) == buggy  # no template
    assert not PromptStyle.RAW_DOUBLE_ASSERT.uses_chat_template and PromptStyle.CHAT.uses_chat_template
