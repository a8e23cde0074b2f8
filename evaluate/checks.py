"""Split each MBPP test into what runs in the sandbox and what stays in the trusted parent (pure).

A test of the form ``assert <expression> == <literal>`` (the right side a Python literal that
``ast.literal_eval`` accepts: numbers, strings, bytes, None, booleans, tuples, lists, dicts,
sets, nested) becomes a *value check*: only ``<expression>`` goes into the sandbox, whose
runner sends back the value it evaluates to, and the parent decides ``value == literal``
itself (:mod:`evaluate.verdict`). The literal never enters the sandbox. Every other test (a
chained comparison, ``math.isclose(...)``, ``not f(x)``, a right side that is not a literal,
anything that is not a single ``assert``) is a *statement check*: the whole statement runs
in the sandbox, as before, and the sandbox reports whether it raised.

All 1164 tests of the 388 validation problems are value checks.
"""

from __future__ import annotations

import ast
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from enum import Enum


class CheckKind(str, Enum):
    """How one test is decided."""

    VALUE = "value"  # the sandbox evaluates an expression; the parent compares its value
    STATEMENT = "statement"  # the sandbox runs the statement and reports if it raised


@dataclass(frozen=True)
class Check:
    """One test, split.

    Attributes:
        kind: value or statement check.
        source: what the sandbox gets: the left expression (value checks, parenthesized so
            that a multi-line expression compiles in ``eval`` mode) or the whole statement.
        expected: the literal the value must equal (value checks only; never sent).
    """

    kind: CheckKind
    source: str
    expected: object = field(default=None, compare=False)

    @property
    def trusted(self) -> bool:
        """Decided in the parent."""
        return self.kind is CheckKind.VALUE


def split_test(test: str) -> Check:
    """The :class:`Check` for one test statement (a statement check unless the form fits)."""
    statement = Check(CheckKind.STATEMENT, test)
    text = test.replace("\r\n", "\n").strip()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            tree = ast.parse(text)
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        return statement
    if len(tree.body) != 1 or not isinstance(tree.body[0], ast.Assert):
        return statement
    node = tree.body[0].test
    if not (isinstance(node, ast.Compare) and len(node.ops) == 1 and isinstance(node.ops[0], ast.Eq)):
        return statement
    try:
        expected = ast.literal_eval(node.comparators[0])
    except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
        return statement
    left = ast.get_source_segment(text, node.left) or ast.unparse(node.left)
    source = f"({left}\n)"
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            compile(source, "<test>", "eval", dont_inherit=True)
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        return statement
    return Check(CheckKind.VALUE, source, expected)


def split_tests(tests: Sequence[str]) -> tuple[Check, ...]:
    """:func:`split_test` of each test, in order."""
    return tuple(split_test(test) for test in tests)


def count_trusted(tests: Sequence[str]) -> int:
    """How many of ``tests`` are decided in the parent (the dataset's ``n_tests_trusted``)."""
    return sum(check.trusted for check in split_tests(tests))
