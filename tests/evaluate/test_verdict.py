"""Which tests are decided in the trusted parent, and the verdict rules on hand-made records (pure).

Each decide case gives what the runner reported and how its process ended; the expected
result follows the rules in evaluate/verdict.py.
"""

from __future__ import annotations

import json
import signal

import pytest

from evaluate import harness
from evaluate.verdict import (
    FORGED_OK,
    Check,
    CheckKind,
    Ending,
    ErrorType,
    count_trusted,
    decide,
    error_type_of,
    signal_of,
    split_test,
)

TESTS = ("assert add_one(1) == 2", "assert add_one(2) == 3", "assert add_one(-1) == 0")
STATEMENTS = tuple(Check(CheckKind.STATEMENT, t) for t in TESTS)
encode = harness._make_encoder(harness.MAX_VALUE_BYTES, harness.MAX_VALUE_DEPTH)
CLEAN = Ending(timed_out=False, exit_status=0)


def records(*, stage=None, tests=None, values=None, done=3, ready=True) -> dict:
    return {"ready": ready, "stage": stage, "tests": tests or {}, "values": values or {}, "done": done}


def values(*items) -> dict:
    return {i: encode(v) for i, v in enumerate(items)}


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
    assert all(split_test(t).trusted for t in json.loads(json.dumps(tests)))


# (case id, checks, records, ending, passed, error_type, message, n_tests_passed)
CASES = [
    ("values equal: pass", None, records(values=values(2, 3, 0)), CLEAN, True, None, None, 3),
    ("float equal to int literal", None, records(values=values(2.0, 3, 0)), CLEAN, True, None, None, 3),
    ("one wrong value", None, records(values=values(2, 4, 0)), CLEAN, False, ErrorType.ASSERTION_FAILED,
     "test 2/3 failed: assert add_one(2) == 3 (returned 4, expected 3)", 2),
    ("first failure named", None, records(values={**values(9, 9), 2: encode(0)}), CLEAN, False,
     ErrorType.ASSERTION_FAILED, "test 1/3 failed: assert add_one(1) == 2 (returned 9, expected 2)", 1),
    ("ok records forged for value checks fail them", None,
     records(tests={0: ("ok", ""), 1: ("ok", ""), 2: ("ok", "")}), CLEAN, False, ErrorType.NO_RESULT,
     f"test 1/3 failed: assert add_one(1) == 2 ({FORGED_OK})", 0),
    ("forged done before any value", None, records(done=3), CLEAN, False,
     ErrorType.NO_RESULT, "the runner finished without a result for every test after 0/3 tests", 0),
    ("exception while evaluating", None,
     records(values={0: encode(2), 2: encode(0)}, tests={1: ("runtime_error", "ZeroDivisionError: division by zero")}),
     CLEAN, False, ErrorType.RUNTIME_ERROR,
     "test 2/3 failed: assert add_one(2) == 3 (ZeroDivisionError: division by zero)", 2),
    ("unsupported value reported by the runner", None,
     records(tests={0: ("assertion_failed", "returned an object of type A; only ...")}, values={1: encode(3), 2: encode(0)}),
     CLEAN, False, ErrorType.ASSERTION_FAILED,
     "test 1/3 failed: assert add_one(1) == 2 (returned an object of type A; only ...)", 2),
    ("unreadable value", None, records(values={0: b"Q", 1: encode(3), 2: encode(0)}), CLEAN, False,
     ErrorType.NO_RESULT, "test 1/3 failed: assert add_one(1) == 2 (the sandbox sent an unreadable value: "
     "unknown tag b'Q' at byte 0)", 2),
    ("statement checks pass on ok", STATEMENTS, records(tests={0: ("ok", ""), 1: ("ok", ""), 2: ("ok", "")}),
     CLEAN, True, None, None, 3),
    ("statement checks ignore values", STATEMENTS, records(values=values(2, 3, 0)), CLEAN, False,
     ErrorType.NO_RESULT, "the runner finished without a result for every test after 0/3 tests", 0),
    ("bare AssertionError adds no detail", STATEMENTS,
     records(tests={0: ("ok", ""), 1: ("assertion_failed", "AssertionError")}, done=3), CLEAN, False,
     ErrorType.ASSERTION_FAILED, "test 2/3 failed: assert add_one(2) == 3", 1),
    ("legacy stops at the first failure", STATEMENTS,
     records(tests={0: ("runtime_error", "NameError: name 'root' is not defined")}), CLEAN, False,
     ErrorType.RUNTIME_ERROR, "test 1/3 failed: assert add_one(1) == 2 (NameError: name 'root' is not defined)", 0),
    ("code stage failure", None, records(stage=("code", "syntax_error", "SyntaxError: invalid syntax")), CLEAN,
     False, ErrorType.SYNTAX_ERROR, "the code failed: SyntaxError: invalid syntax", 0),
    ("setup stage failure", None, records(stage=("setup", "runtime_error", "NameError: x"), values=values(2)), CLEAN,
     False, ErrorType.RUNTIME_ERROR, "test_setup_code failed: NameError: x", 0),
    ("unknown error string is a runtime error", STATEMENTS, records(tests={0: ("weird", "boom")}), CLEAN, False,
     ErrorType.RUNTIME_ERROR, "test 1/3 failed: assert add_one(1) == 2 (boom)", 0),
    ("wall-clock timeout", None, records(values=values(2), done=None), Ending(timed_out=True, exit_status=None,
     timeout_s=3.0), False, ErrorType.TIMEOUT, "exceeded the 3 s wall-clock limit after 1/3 tests", 1),
    ("cpu limit through bwrap", None, records(done=None), Ending(timed_out=False, exit_status=128 + signal.SIGXCPU,
     cpu_s=4), False, ErrorType.TIMEOUT, "exceeded the 4 s CPU-time limit after 0/3 tests", 0),
    ("memory error in output", None, records(done=None), Ending(False, 1, output="MemoryError\n"), False,
     ErrorType.MEMORY, "ran out of memory (2048 MiB limit) after 0/3 tests", 0),
    ("killed by a signal", None, records(values=values(2, 3), done=None), Ending(False, -signal.SIGKILL), False,
     ErrorType.NO_RESULT, "killed by SIGKILL after 2/3 tests", 2),
    ("early exit", None, records(done=None), Ending(False, 0), False, ErrorType.NO_RESULT,
     "exited with status 0 before reporting results after 0/3 tests", 0),
    ("a failure wins over the timeout", None, records(values=values(1), done=None), Ending(True, None), False,
     ErrorType.ASSERTION_FAILED, "test 1/3 failed: assert add_one(1) == 2 (returned 1, expected 2)", 0),
]


@pytest.mark.parametrize(
    ("checks", "recs", "ending", "passed", "error_type", "message", "n_passed"),
    [case[1:] for case in CASES],
    ids=[case[0] for case in CASES],
)
def test_decide(checks, recs, ending, passed, error_type, message, n_passed):
    result = decide(TESTS, checks if checks is not None else tuple(map(split_test, TESTS)), recs, ending)
    assert (result.passed, result.error_type, result.error_message, result.n_tests_passed) == (
        passed, error_type, message, n_passed,
    )
    assert result.n_tests == 3


def test_no_tests_is_never_a_pass():
    result = decide((), (), records(done=0), CLEAN)
    assert not result.passed and result.error_message == "no tests to run (0 given)"


@pytest.mark.parametrize(
    ("status", "expected"),
    [(-9, signal.SIGKILL), (128 + 24, signal.SIGXCPU), (0, None), (1, None), (None, None), (128 + 99, None)],
)
def test_signal_of(status, expected):
    assert signal_of(status) == expected


def test_error_type_of_maps_runner_strings():
    assert error_type_of("assertion_failed") is ErrorType.ASSERTION_FAILED
    assert error_type_of("memory") is ErrorType.MEMORY
    assert error_type_of("nonsense") is ErrorType.RUNTIME_ERROR
