"""Number and table formatting shared by the plots and the text (missing values read "n/a")."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import pandas as pd

NA = "n/a"


def num(value: float | None, spec: str) -> str:
    """``value`` in ``spec`` format, or "n/a" for None and NaN."""
    if value is None or pd.isna(value):
        return NA
    return format(value, spec)


def fmt_auroc(value: float | None) -> str:
    """AUROC with two decimals, or "n/a"."""
    return num(value, ".2f")


def pct(rate: float | None) -> str:
    """A share as a percentage with one decimal, or "n/a"."""
    return num(rate, ".1%")


def table(head: Sequence[str], rows: Iterable[Sequence[str]]) -> list[str]:
    """A markdown table: the header, its separator, one line per row of cells."""
    return ["| " + " | ".join(cells) + " |" for cells in (head, ["---"] * len(head), *rows)]
