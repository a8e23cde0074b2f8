"""Cyclomatic complexity of reference solutions, as the research split measured it."""

from __future__ import annotations

import warnings

from radon.complexity import cc_visit


def cyclomatic_complexity(code: str) -> int:
    """Maximum radon ``cc_visit`` complexity over the blocks of ``code``; 1 when none.

    Code that radon cannot parse also counts as 1 (no measurable blocks).
    """
    try:
        # Some MBPP solutions hold invalid escape sequences ("\d"): harmless, but noisy.
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", (DeprecationWarning, SyntaxWarning))
            blocks = cc_visit(code)
    except SyntaxError:
        return 1
    return max((b.complexity for b in blocks), default=1)
