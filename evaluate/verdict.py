"""Outcomes of one program, which of its tests the trusted parent decides, and the rules that decide (pure).

A test ``assert <expression> == <literal>`` (a literal ``ast.literal_eval`` accepts) is a *value
check*: only the expression enters the sandbox, whose runner sends back its value, and
:func:`decide` compares it with the literal here. Any other test is a *statement check*, run
whole in the sandbox, which reports whether it raised. All 1164 tests of the 388 validation
problems are value checks. The rules of :func:`decide`, in order:

1. A failed stage (the code or ``test_setup_code`` raised, or the code does not compile) fails
   the program with that stage's error.
2. Each test is decided on its own: a value check passes only when its value decodes and equals
   the literal (an ``ok`` record for it fails it: only a forger sends one); a statement check
   passes on its ``ok`` record. The first failed test (lowest index) names the error.
3. Without a failure, the program passes only when every test passed and ``done`` arrived.
4. Otherwise the process ended early: wall-clock timeout, CPU limit (``SIGXCPU``),
   ``MemoryError`` in its output, ``done`` before every test reported, a signal, or an exit.
"""

from __future__ import annotations

import ast
import signal
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from enum import Enum

from evaluate import harness
from evaluate.values import BadValue, decode, short_repr

MAX_TEST_CHARS = 200  # of a failed test's statement in the message
FORGED_OK = "the sandbox reported 'ok' instead of a value, which only a forged record does"
_PARSE_ERRORS = (SyntaxError, ValueError, TypeError, RecursionError, MemoryError)


class Verdict(str, Enum):
    """Which rules decide ``test_passed`` (``--verdict``; the dataset carries both)."""

    ROBUST = "robust"  # ours: extracted code, test_setup_code, values compared in the parent
    LEGACY = "legacy"  # the earlier tool's: the whole cleaned completion, no setup code, asserts in the sandbox


class ErrorType(str, Enum):
    """Why a program failed (the dataset's ``error_type`` column; null when it passed)."""

    SYNTAX_ERROR = "syntax_error"  # no parsable code, or the code does not compile
    ASSERTION_FAILED = "assertion_failed"  # a test's assert was false
    RUNTIME_ERROR = "runtime_error"  # any other exception (incl. SystemExit, NameError, OSError)
    TIMEOUT = "timeout"  # wall-clock or CPU-time limit
    MEMORY = "memory"  # MemoryError under the address-space limit
    NO_RESULT = "no_result"  # the process ended before reporting every test (os._exit, signal, crash)


@dataclass(frozen=True)
class ExecutionResult:
    """What one program did against its tests (``error_type`` and ``error_message`` are None when it passed)."""

    passed: bool  # every test ran and passed, as reported over the authenticated channel
    error_type: ErrorType | None  # the first failure's
    error_message: str | None
    n_tests_passed: int  # every test runs even after a failure (legacy: up to the first)
    n_tests: int
    wall_time_s: float  # from launch to the end of the sandbox
    output: str = ""  # the start of the program's stdout and stderr (capped), for debugging


class CheckKind(str, Enum):
    """How one test is decided."""

    VALUE = "value"  # the sandbox evaluates an expression; the parent compares its value
    STATEMENT = "statement"  # the sandbox runs the statement and reports if it raised


@dataclass(frozen=True)
class Check:
    """One test, split: what the sandbox gets (``source``) and, for a value check, the literal it never gets.

    ``source`` is the left expression, parenthesized so that a multi-line one compiles in
    ``eval`` mode (value checks), or the whole statement.
    """

    kind: CheckKind
    source: str
    expected: object = field(default=None, compare=False)

    @property
    def trusted(self) -> bool:
        """Decided in the parent."""
        return self.kind is CheckKind.VALUE


@dataclass(frozen=True)
class Ending:
    """How the sandboxed process ended, and the limits it ran under (for the messages)."""

    timed_out: bool
    exit_status: int | None
    output: str = ""
    wall_time_s: float = 0.0
    timeout_s: float = 10.0
    cpu_s: int = 11
    memory_mib: int = 2048


def split_test(test: str) -> Check:
    """The :class:`Check` for one test statement (a statement check unless the form fits)."""
    text = test.replace("\r\n", "\n").strip()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            tree = ast.parse(text)
            node = tree.body[0].test if len(tree.body) == 1 and isinstance(tree.body[0], ast.Assert) else None
            if not (isinstance(node, ast.Compare) and len(node.ops) == 1 and isinstance(node.ops[0], ast.Eq)):
                return Check(CheckKind.STATEMENT, test)
            expected = ast.literal_eval(node.comparators[0])
            source = f"({ast.get_source_segment(text, node.left) or ast.unparse(node.left)}\n)"
            compile(source, "<test>", "eval", dont_inherit=True)
    except _PARSE_ERRORS:
        return Check(CheckKind.STATEMENT, test)
    return Check(CheckKind.VALUE, source, expected)


def count_trusted(tests: Sequence[str]) -> int:
    """How many of ``tests`` are decided in the parent (the dataset's ``n_tests_trusted``)."""
    return sum(split_test(test).trusted for test in tests)


def decide(tests: Sequence[str], checks: Sequence[Check], records: dict, ending: Ending) -> ExecutionResult:
    """The result of one program.

    Args:
        tests: the test statements, as given (for messages).
        checks: the same tests as :func:`split_test` splits them (all statements for the legacy verdict).
        records: :func:`evaluate.harness.parse_records` output.
        ending: how the process ended.
    """
    n_tests = len(tests)
    outcomes = {i: o for i, check in enumerate(checks) if (o := _test_outcome(i, check, records)) is not None}
    n_passed = sum(1 for error_type, _ in outcomes.values() if error_type is None)

    def result(error_type: ErrorType | None, message: str | None, n_passed: int = n_passed) -> ExecutionResult:
        return ExecutionResult(error_type is None, error_type, message, n_passed, n_tests,
                               round(ending.wall_time_s, 4), ending.output)

    if records["stage"] is not None:
        stage, error_type, message = records["stage"]
        what = "the code" if stage == harness.STAGE_CODE else "test_setup_code"
        return result(error_type_of(error_type), f"{what} failed: {message}", 0)
    failed = [i for i, (error_type, _) in outcomes.items() if error_type is not None]
    if failed:
        index = min(failed)
        error_type, detail = outcomes[index]
        test = tests[index].strip() if 0 <= index < n_tests else "?"
        if len(test) > MAX_TEST_CHARS:
            test = test[: MAX_TEST_CHARS - 3] + "..."
        detail = f" ({detail})" if detail else ""
        return result(error_type, f"test {index + 1}/{n_tests} failed: {test}{detail}")
    done = records["done"]
    if done is not None and n_tests > 0 and done == n_tests and n_passed == n_tests:
        return result(None, None)
    progress = f"after {n_passed}/{n_tests} tests"
    signum = signal_of(ending.exit_status)
    if ending.timed_out:
        return result(ErrorType.TIMEOUT, f"exceeded the {ending.timeout_s:g} s wall-clock limit {progress}")
    if signum == signal.SIGXCPU:
        return result(ErrorType.TIMEOUT, f"exceeded the {ending.cpu_s} s CPU-time limit {progress}")
    if "MemoryError" in ending.output:
        return result(ErrorType.MEMORY, f"ran out of memory ({ending.memory_mib} MiB limit) {progress}")
    if done is not None and n_tests == 0:
        return result(ErrorType.NO_RESULT, "no tests to run (0 given)")
    if done is not None:
        return result(ErrorType.NO_RESULT, f"the runner finished without a result for every test {progress}")
    if signum is not None:
        return result(ErrorType.NO_RESULT, f"killed by {signal.Signals(signum).name} {progress}")
    return result(ErrorType.NO_RESULT, f"exited with status {ending.exit_status} before reporting results {progress}")


def _test_outcome(index: int, check: Check, records: dict) -> tuple[ErrorType | None, str] | None:
    """``(None, "")`` when test ``index`` passed, ``(error_type, detail)`` when it failed, None when unreported."""
    reported = records["tests"].get(index)
    if check.trusted and index in records["values"]:
        return compare_value(records["values"][index], check.expected)
    if reported is None:
        return None
    status, message = reported
    if status != harness.OK:
        return error_type_of(status), "" if message == "AssertionError" else message
    if check.trusted:  # the runner never sends ``ok`` for a value check
        return ErrorType.NO_RESULT, FORGED_OK
    return None, ""


def compare_value(payload: bytes, expected: object) -> tuple[ErrorType | None, str]:
    """Decode the sandbox's value and compare it with the literal, here in the parent."""
    try:
        value = decode(payload)
    except BadValue as exc:
        return ErrorType.NO_RESULT, f"the sandbox sent an unreadable value: {exc}"
    try:
        equal = bool(value == expected)
    except (RecursionError, MemoryError):
        equal = False
    if equal:
        return None, ""
    return ErrorType.ASSERTION_FAILED, f"returned {short_repr(value)}, expected {short_repr(expected)}"


def error_type_of(value: str) -> ErrorType:
    """The runner's error string as an :class:`ErrorType` (unknown strings: runtime error)."""
    try:
        return ErrorType(value)
    except ValueError:
        return ErrorType.RUNTIME_ERROR


def signal_of(exit_status: int | None) -> int | None:
    """The signal that ended the runner: negative status (direct) or 128 + n (through bwrap)."""
    if exit_status is None or 0 <= exit_status <= 128:
        return None
    try:
        return signal.Signals(-exit_status if exit_status < 0 else exit_status - 128).value
    except ValueError:
        return None
