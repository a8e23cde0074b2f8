"""Which tests are decided in the trusted parent, and what the sandbox gets of them (pure)."""

from __future__ import annotations

import json

import pytest

from evaluate.checks import CheckKind, count_trusted, split_test, split_tests


@pytest.mark.parametrize(
    ("test", "source", "expected"),
    [
        ("assert add_one(1) == 2", "(add_one(1)\n)", 2),
        ("  assert f('a') == 'b'  ", "(f('a')\n)", "b"),
        ('assert f(x=[1, 2]) == {"a": (1, 2.5), 3: {1, 2}}', "(f(x=[1, 2])\n)", {"a": (1, 2.5), 3: {1, 2}}),
        ("assert f(1) == -0.5", "(f(1)\n)", -0.5),
        ("assert f(1) == (1+2j)", "(f(1)\n)", 1 + 2j),
        ("assert f(1) == set()", "(f(1)\n)", set()),
        ("assert f(1) == None", "(f(1)\n)", None),
        ("assert f(1) == b'x'", "(f(1)\n)", b"x"),
        ("assert f(1) == 2, 'a message'", "(f(1)\n)", 2),
        ("assert (f(1) +\n        f(2)) == 3", "(f(1) +\n        f(2)\n)", 3),
        ("assert f(1)==2\r\n", "(f(1)\n)", 2),
    ],
)
def test_equality_with_a_literal_is_a_value_check(test, source, expected):
    check = split_test(test)
    assert check.kind is CheckKind.VALUE and check.trusted
    assert check.source == source
    assert check.expected == expected and type(check.expected) is type(expected)
    assert repr(expected) not in check.source or repr(expected) in source  # the literal is not sent


@pytest.mark.parametrize(
    "test",
    [
        "assert f(1) == g(2)",  # right side not a literal
        "assert f(1) == sys.getsizeof((1, 2))",  # MBPP task 596
        "assert math.isclose(f(1), 0.5)",
        "assert f(1) != 2",
        "assert f(1) == 2 == g(1)",  # chained
        "assert not f(1)",
        "assert f(1) is None",
        "assert f(1)",
        "x = f(1)",
        "assert f(1) == 2; assert f(2) == 3",  # two statements
        "assert f(1) ==",  # does not parse
        "assert f(1) == [1, *rest]",
    ],
)
def test_other_forms_are_statement_checks(test):
    check = split_test(test)
    assert check.kind is CheckKind.STATEMENT and not check.trusted
    assert check.source == test and check.expected is None


def test_every_validation_test_is_decided_in_the_parent(problems_path):
    import pandas as pd

    problems = pd.read_parquet(problems_path)
    tests = [t for ts in problems["test_list"] for t in ts]
    assert len(tests) == 1164 and count_trusted(tests) == 1164
    assert all(c.trusted for c in split_tests(json.loads(json.dumps(tests))))
