"""Code extraction on completions shaped like real model output (chat and raw styles)."""

from __future__ import annotations

import ast

import pytest

from evaluate.extract import (
    ExtractionMethod,
    called_names,
    extract_code,
    fenced_blocks,
    parsable_span,
    sanitize,
)

TESTS = ['assert remove_Occ("hello","l") == "heo"', 'assert remove_Occ("abcda","a") == "bcd"']


def test_prose_around_one_fence_keeps_the_function_and_drops_self_tests():
    completion = (
        "Here is a Python function that removes the first and last occurrence of a character:\n\n"
        "```python\n"
        "def remove_Occ(s, ch):\n"
        "    first = s.find(ch)\n"
        "    if first != -1:\n"
        "        s = s[:first] + s[first + 1:]\n"
        "    last = s.rfind(ch)\n"
        "    if last != -1:\n"
        "        s = s[:last] + s[last + 1:]\n"
        "    return s\n\n"
        "# Test the function\n"
        'print(remove_Occ("hello", "l"))  # Output: heo\n'
        'assert remove_Occ("hello","l") == "hxo"\n'
        "```\n\n"
        "This function works by finding the first occurrence with `find` and the last with `rfind`."
    )
    ex = extract_code(completion, tests=TESTS)
    assert ex.method is ExtractionMethod.FENCED
    assert ex.code.startswith("def remove_Occ(s, ch):") and ex.code.endswith("    return s")
    assert "print" not in ex.code and "assert" not in ex.code and "```" not in ex.code
    namespace: dict = {}
    exec(ex.code, namespace)
    assert namespace["remove_Occ"]("hello", "l") == "heo"


def test_several_fences_pick_the_one_defining_the_tested_function_and_borrow_its_imports():
    completion = (
        "To solve this, first import the module:\n\n```python\nimport re\n```\n\n"
        "A helper you might find useful:\n\n```python\ndef helper(x):\n    return x\n```\n\n"
        "Then the function:\n\n```py\ndef remove_Occ(s, ch):\n"
        "    return re.sub(re.escape(ch), '', s, count=1)[::-1].replace(ch, '', 1)[::-1]\n```\n\n"
        "Example usage:\n\n```python\nif __name__ == \"__main__\":\n    print(remove_Occ('hello', 'l'))\n```"
    )
    ex = extract_code(completion, tests=TESTS)
    assert ex.method is ExtractionMethod.FENCED
    assert ex.code.splitlines()[0] == "import re"
    assert "def remove_Occ" in ex.code and "helper" not in ex.code and "__main__" not in ex.code
    namespace: dict = {}
    exec(ex.code, namespace)
    assert namespace["remove_Occ"]("abcda", "a") == "bcd"


def test_python_labelled_block_wins_over_shell_block():
    completion = "Install nothing:\n```bash\npip install nothing\n```\n```\ndef remove_Occ(s, c):\n    return s\n```"
    assert fenced_blocks(completion) == ["def remove_Occ(s, c):\n    return s\n"]


def test_chat_explanation_without_fences_skips_the_prose():
    completion = (
        "Sure! Here's the solution:\n\n"
        "def remove_Occ(s, ch):\n"
        "    return s.replace(ch, '', 1)[::-1].replace(ch, '', 1)[::-1]\n\n"
        "This removes the first and the last occurrence. Let me know if you need anything else!"
    )
    ex = extract_code(completion, tests=TESTS)
    assert ex.method is ExtractionMethod.SPAN
    assert ex.code == "def remove_Occ(s, ch):\n    return s.replace(ch, '', 1)[::-1].replace(ch, '', 1)[::-1]"


def test_raw_continuation_that_starts_the_next_problem_keeps_the_first_solution():
    completion = (
        "\ndef remove_Occ(s,ch): \r\n"
        "    for i in range(len(s)): \r\n"
        "        if (s[i] == ch): \r\n"
        "            s = s[0 : i] + s[i + 1:] \r\n"
        "            break\r\n"
        "    return s \r\n\r\n"
        'assert remove_Occ("hello","l") == "helo"\r\n\r\n'
        "Write a function to find the maximum of two numbers.\r\n\r\n"
        "assert max_of_two(1, 2) == 2\r\n\r\n"
        "# Solution:\r\n"
        "def max_of_two(a, b):\r\n"
        "    return max(a, b"
    )
    ex = extract_code(completion, tests=TESTS)
    assert ex.method is ExtractionMethod.SPAN
    assert ex.code.startswith("def remove_Occ(s,ch):") and ex.code.endswith("    return s ")
    assert "max_of_two" not in ex.code and "\r" not in ex.code


def test_truncated_fence_keeps_the_longest_parsable_prefix():
    completion = (
        "```python\nimport math\n\ndef remove_Occ(s, ch):\n    first = s.find(ch)\n"
        "    s = s[:first] + s[first + 1:]\n    last = s.rfind("
    )
    ex = extract_code(completion, tests=TESTS)
    assert ex.method is ExtractionMethod.SPAN
    assert ex.code == "import math\n\ndef remove_Occ(s, ch):\n    first = s.find(ch)\n    s = s[:first] + s[first + 1:]"


def test_truncated_block_with_the_function_beats_a_block_of_helpers():
    completion = (
        "```python\ndef helper():\n    return 1\n```\n\nNow the answer:\n\n"
        "```python\ndef remove_Occ(s, ch):\n    return s.replace(ch, '')\n\ndef unused(x):\n    return (x"
    )
    assert extract_code(completion, tests=TESTS).code == "def remove_Occ(s, ch):\n    return s.replace(ch, '')"


def test_stray_closing_fence_does_not_swallow_the_code():
    # SmolLM2-135M-Instruct, raw prompt, MBPP task 18: code, then a fence it never opened.
    completion = (
        "\ndef remove_dirty_chars(input_str, target_str):\n"
        "    return ''.join([c for c in input_str if c not in target_str])\n\n"
        "# Example usage:\n"
        'print(remove_dirty_chars("probasscurve", "pros"))  # Output: bacuve\n'
        "```\n\nIn this example, the function `remove_dirty_chars` removes every character"
    )
    ex = extract_code(completion, tests=['assert remove_dirty_chars("probasscurve", "pros") == \'bacuve\''])
    assert ex.code == "def remove_dirty_chars(input_str, target_str):\n    return ''.join([c for c in input_str if c not in target_str])"
    assert ex.method is ExtractionMethod.SPAN


def test_tabs_are_kept_verbatim():
    code = "class Node:\n\tdef __init__(self, data):\n\t\tself.data = data\n\ndef max_height(node):\n\treturn 0 if node is None else 1"
    ex = extract_code(f"```python\n{code}\n```", tests=["assert (max_height(root)) == 3"])
    assert ex.code == code


def test_indented_block_in_a_markdown_list_is_dedented():
    completion = "1. Define it:\n\n   ```python\n   def remove_Occ(s, c):\n       return s\n   ```\n"
    assert extract_code(completion, tests=TESTS).code == "def remove_Occ(s, c):\n    return s"


@pytest.mark.parametrize("completion", ["", None, "I'm sorry, I cannot help with that.", "```python\n```", "\x00\x00"])
def test_no_code_gives_empty_string_not_an_error(completion):
    ex = extract_code(completion, tests=TESTS)
    assert ex.code == "" and ex.method is ExtractionMethod.NONE


def test_sanitize_keeps_assignments_that_definitions_or_tests_use():
    code = (
        "import heapq as hq\nfrom math import *  # star import kept\n"
        "MOD = 10**9 + 7\nunused = compute_slowly()\nmemo = {}\nLIMIT = MOD - 1\n"
        "@staticmethod_like\ndef f(x):\n    memo[x] = x % MOD\n    return memo[x]\n"
        "print(f(3))\nassert f(3) == 4\nfor i in range(3):\n    f(i)\n"
        "if __name__ == '__main__':\n    main()\n"
        "CONSTANT_FOR_TESTS = 3\n"
    )
    out = sanitize(code, needed={"f", "CONSTANT_FOR_TESTS"})
    assert out.splitlines() == [
        "import heapq as hq",
        "from math import *  # star import kept",
        "MOD = 10**9 + 7",
        "memo = {}",
        "@staticmethod_like",
        "def f(x):",
        "    memo[x] = x % MOD",
        "    return memo[x]",
        "CONSTANT_FOR_TESTS = 3",
    ]


def test_sanitize_splits_statements_sharing_a_line():
    assert sanitize("import re; print('hi')\ndef f(): return re") == "import re\ndef f(): return re"


def test_sanitize_returns_original_text_when_nothing_is_dropped():
    code = "from itertools import combinations_with_replacement \ndef combinations_colors(l, n):\n    return 1"
    assert sanitize(code) == code


def test_called_names_skip_builtins_and_methods():
    tests = ["assert math.isclose(area_circle(2), 12.56)", "assert sorted(find_pairs([1, 2])) == [(1, 2)]"]
    assert called_names(tests) == ["area_circle", "find_pairs"]


def test_parsable_span_prefers_the_span_defining_the_tested_function():
    text = "import os\nprose line here\ndef other():\n    pass\nmore prose\ndef remove_Occ(s, c):\n    return s\n"
    assert parsable_span(text, wanted=["remove_Occ"]) == "def remove_Occ(s, c):\n    return s\n"
    assert parsable_span(text) == "def other():\n    pass"


def test_every_extraction_parses():
    nasty = ["def f(:\n", "```python\ndef f(x):\n\treturn x\n        return 2\n```", "x = (\n" * 200, "if True:\n  a\n\tb"]
    for text in nasty:
        code = extract_code(text, tests=["assert f(1) == 1"]).code
        ast.parse(code)
