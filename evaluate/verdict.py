"""Decide one program's result from its authenticated records and how its process ended (pure).

No process is started here: :func:`decide` takes what :func:`evaluate.harness.parse_records`
read and an :class:`Ending`, so every rule is tested by a table of cases
(``tests/evaluate/test_verdict.py``).

Rules, in order:

1. A failed stage (the code or ``test_setup_code`` raised, or the code does not compile)
   fails the program with that stage's error.
2. Each test is decided on its own. A value check (:mod:`evaluate.checks`) passes only when
   the value the sandbox sent decodes (:mod:`evaluate.values`) and equals the test's literal,
   compared here; an ``ok`` record for it fails it (only a forger sends one). A statement check passes on its
   ``ok`` record. The first failed test (lowest index) names the error.
3. Without a failure, the program passes only when every test passed and ``done`` arrived.
4. Otherwise the process ended early: wall-clock timeout, CPU limit (``SIGXCPU``),
   ``MemoryError`` in its output, ``done`` before every test reported, a signal, or an exit.
"""

from __future__ import annotations

import signal
from collections.abc import Sequence
from dataclasses import dataclass

from evaluate import harness
from evaluate.checks import Check
from evaluate.outcomes import ErrorType, ExecutionResult
from evaluate.values import BadValue, decode, short_repr


MAX_TEST_CHARS = 200  # of a failed test's statement in the message
FORGED_OK = "the sandbox reported 'ok' instead of a value, which only a forged record does"


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


@dataclass(frozen=True)
class _Outcome:
    passed: bool
    error_type: ErrorType | None = None
    detail: str = ""  # shown in parentheses after the failed test


def decide(tests: Sequence[str], checks: Sequence[Check], records: dict, ending: Ending) -> ExecutionResult:
    """The result of one program.

    Args:
        tests: the test statements, as given (for messages).
        checks: the same tests split by :func:`evaluate.checks.split_tests` (or all
            statements, for the legacy verdict).
        records: :func:`evaluate.harness.parse_records` output.
        ending: how the process ended.
    """
    n_tests = len(tests)
    outcomes = {i: o for i, check in enumerate(checks) if (o := _test_outcome(i, check, records)) is not None}
    n_passed = sum(1 for o in outcomes.values() if o.passed)

    def result(error_type: ErrorType | None, message: str | None) -> ExecutionResult:
        return ExecutionResult(
            passed=error_type is None,
            error_type=error_type,
            error_message=message,
            n_tests_passed=n_passed,
            n_tests=n_tests,
            wall_time_s=round(ending.wall_time_s, 4),
            output=ending.output,
        )

    if records["stage"] is not None:
        stage, error_type, message = records["stage"]
        what = "the code" if stage == harness.STAGE_CODE else "test_setup_code"
        n_passed = 0
        return result(error_type_of(error_type), f"{what} failed: {message}")
    failures = sorted(i for i, o in outcomes.items() if not o.passed)
    if failures:
        index = failures[0]
        failed = outcomes[index]
        test = short_text(tests[index].strip()) if 0 <= index < n_tests else "?"
        detail = f" ({failed.detail})" if failed.detail else ""
        return result(failed.error_type, f"test {index + 1}/{n_tests} failed: {test}{detail}")
    done = records["done"]
    if done is not None and n_tests > 0 and done == n_tests and n_passed == n_tests:
        return result(None, None)
    progress = f"after {n_passed}/{n_tests} tests"
    if ending.timed_out:
        return result(ErrorType.TIMEOUT, f"exceeded the {ending.timeout_s:g} s wall-clock limit {progress}")
    signum = signal_of(ending.exit_status)
    if signum == signal.SIGXCPU:
        return result(ErrorType.TIMEOUT, f"exceeded the {ending.cpu_s} s CPU-time limit {progress}")
    if "MemoryError" in ending.output:
        return result(ErrorType.MEMORY, f"ran out of memory ({ending.memory_mib} MiB limit) {progress}")
    if done is not None:
        if n_tests == 0:
            return result(ErrorType.NO_RESULT, "no tests to run (0 given)")
        return result(ErrorType.NO_RESULT, f"the runner finished without a result for every test {progress}")
    if signum is not None:
        return result(ErrorType.NO_RESULT, f"killed by {signal.Signals(signum).name} {progress}")
    return result(ErrorType.NO_RESULT, f"exited with status {ending.exit_status} before reporting results {progress}")


def _test_outcome(index: int, check: Check, records: dict) -> _Outcome | None:
    """Pass or fail of one test; None when nothing usable was reported for it."""
    reported = records["tests"].get(index)
    if check.trusted:
        payload = records["values"].get(index)
        if payload is not None:
            return compare_value(payload, check.expected)
        if reported is None:
            return None
        if reported[0] == harness.OK:  # the runner never sends one for a value check
            return _Outcome(False, ErrorType.NO_RESULT, FORGED_OK)
    elif reported is None:
        return None
    status, message = reported
    if status == harness.OK:
        return _Outcome(True)
    return _Outcome(False, error_type_of(status), "" if message == "AssertionError" else message)


def compare_value(payload: bytes, expected: object) -> _Outcome:
    """Decode the sandbox's value and compare it with the literal, here in the parent."""
    try:
        value = decode(payload)
    except BadValue as exc:
        return _Outcome(False, ErrorType.NO_RESULT, f"the sandbox sent an unreadable value: {exc}")
    try:
        equal = bool(value == expected)
    except (RecursionError, MemoryError):
        equal = False
    if equal:
        return _Outcome(True)
    return _Outcome(False, ErrorType.ASSERTION_FAILED, f"returned {short_repr(value)}, expected {short_repr(expected)}")


def short_text(text: str, limit: int = MAX_TEST_CHARS) -> str:
    """``text`` cut to ``limit`` characters."""
    return text if len(text) <= limit else text[: limit - 3] + "..."


def error_type_of(value: str) -> ErrorType:
    """The runner's error string as an :class:`ErrorType` (unknown strings: runtime error)."""
    try:
        return ErrorType(value)
    except ValueError:
        return ErrorType.RUNTIME_ERROR


def signal_of(exit_status: int | None) -> int | None:
    """The signal that ended the runner: negative status (direct) or 128 + n (through bwrap)."""
    if exit_status is None:
        return None
    if exit_status < 0:
        number = -exit_status
    elif exit_status > 128:
        number = exit_status - 128
    else:
        return None
    try:
        return signal.Signals(number).value
    except ValueError:
        return None
