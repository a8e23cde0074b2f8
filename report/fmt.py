"""Number formatting shared by the plots and the text (missing values read "n/a")."""

from __future__ import annotations

NA = "n/a"


def fmt_auroc(value: float | None) -> str:
    """AUROC with two decimals, or "n/a"."""
    return NA if value is None else f"{value:.2f}"


def pct(rate: float | None) -> str:
    """A share as a percentage with one decimal, or "n/a"."""
    return NA if rate is None else f"{100 * rate:.1f}%"


def num(value: float | int | None, spec: str = ".1f") -> str:
    """A number in ``spec`` format, or "n/a"."""
    return NA if value is None else format(value, spec)


def fmt_cv(auroc: float | None, n_folds: int) -> str:
    """Cross-validated AUROC with its fold count, or why there is none."""
    return f"{n_folds}-fold CV {fmt_auroc(auroc)}" if n_folds else "CV n/a (< 2 tasks in a class)"
