"""Names of evaluation outcomes, defined once: readers compare against these values."""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum


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
    """What one program did against its tests.

    Attributes:
        passed: every test ran and passed, as reported over the authenticated channel.
        error_type: the first failure's category, ``None`` when ``passed``.
        error_message: a short human-readable reason, ``None`` when ``passed``.
        n_tests_passed: tests that passed (all tests run even after a failure).
        n_tests: tests given.
        wall_time_s: seconds from launch to the end of the sandbox.
        output: the start of the program's stdout and stderr (capped), for debugging.
    """

    passed: bool
    error_type: ErrorType | None
    error_message: str | None
    n_tests_passed: int
    n_tests: int
    wall_time_s: float
    output: str = ""

    def to_json(self) -> dict:
        return {
            "passed": self.passed,
            "error_type": self.error_type.value if self.error_type else None,
            "error_message": self.error_message,
            "n_tests_passed": self.n_tests_passed,
            "n_tests": self.n_tests,
            "wall_time_s": self.wall_time_s,
            "output": self.output,
        }

    @classmethod
    def from_json(cls, data: dict) -> "ExecutionResult":
        return cls(
            passed=bool(data["passed"]),
            error_type=ErrorType(data["error_type"]) if data["error_type"] else None,
            error_message=data["error_message"],
            n_tests_passed=int(data["n_tests_passed"]),
            n_tests=int(data["n_tests"]),
            wall_time_s=float(data["wall_time_s"]),
            output=data.get("output", ""),
        )
